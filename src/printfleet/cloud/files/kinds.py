"""What an upload is judged as before its bytes arrive: its kind, by the name's suffix, the
name it is shown under, and the ways an upload is refused."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class UploadRejected(Exception):  # noqa: N818 - reads as what happened to the upload
    """An upload that was not kept; the message says why, for the person who sent it."""


class UploadTooLarge(UploadRejected):
    """Larger than the configured limit (413)."""


class UnsupportedFileType(UploadRejected):
    """Not a file type printers take (415)."""


class InvalidFile(UploadRejected):
    """The right extension, the wrong contents: binary junk, a truncated archive (422)."""


class ChecksBusy(UploadRejected):
    """Every check worker is busy and stayed so for the allowed wait (503, Retry-After)."""


class MalformedUpload(UploadRejected):
    """Not a well-formed ``multipart/form-data`` body with a file part (400)."""


class FileKind(StrEnum):
    """The print files the cloud accepts, by their suffix."""

    GCODE = ".gcode"
    GCODE_3MF = ".gcode.3mf"
    """A sliced project (Bambu Studio, Orca): a zip with ``Metadata/plate_N.gcode`` inside."""


def kind_of(name: str) -> FileKind:
    """The kind of file ``name`` names; raises :class:`UnsupportedFileType` for anything else."""
    lowered = name.lower()
    # Longest suffix first: every .gcode.3mf would otherwise be tested as .3mf.
    for kind in sorted(FileKind, key=len, reverse=True):
        if lowered.endswith(kind.value) and len(lowered) > len(kind.value):
            return kind
    accepted = " or ".join(kind.value for kind in FileKind)
    raise UnsupportedFileType(f"{name!r} is not a print file: upload {accepted}")


def clean_name(name: str) -> str:
    """A display name from a client-given file name: no folders, no control characters."""
    base = re.split(r"[\\/]", name)[-1]
    printable = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    return unicodedata.normalize("NFC", printable).strip()[:255]
