"""Uploaded print files: streamed to disk while hashed and counted, checked, then kept.

An upload never sits in memory whole. It is written to a temporary file in the data directory
as it arrives, and becomes visible only complete and checked (G-code text, or a sliced 3MF
archive): one rename puts it in place, then the store records it. Whatever fails on the way
leaves neither a file nor a row behind.

``kinds`` judges an upload by its name and names the ways it is refused, ``multipart`` parses
the streamed form, ``checks`` checks the contents in worker threads of their own, and
``storage`` puts it all together (:class:`FileStorage`).
"""

from printfleet.cloud.files.checks import (
    DEFAULT_CHECK_WAIT_S,
    DEFAULT_CHECK_WORKERS,
    ArchiveLimits,
    UploadChecks,
    check_file,
)
from printfleet.cloud.files.kinds import (
    ChecksBusy,
    FileKind,
    InvalidFile,
    MalformedUpload,
    UnsupportedFileType,
    UploadRejected,
    UploadTooLarge,
    clean_name,
    kind_of,
)
from printfleet.cloud.files.multipart import MultipartFile
from printfleet.cloud.files.storage import DEFAULT_MAX_UPLOAD_BYTES, FileRecords, FileStorage

__all__ = [
    "DEFAULT_CHECK_WAIT_S",
    "DEFAULT_CHECK_WORKERS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "ArchiveLimits",
    "ChecksBusy",
    "FileKind",
    "FileRecords",
    "FileStorage",
    "InvalidFile",
    "MalformedUpload",
    "MultipartFile",
    "UnsupportedFileType",
    "UploadChecks",
    "UploadRejected",
    "UploadTooLarge",
    "check_file",
    "clean_name",
    "kind_of",
]
