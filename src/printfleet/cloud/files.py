"""Uploaded print files: streamed to disk while hashed and counted, checked, then kept.

An upload never sits in memory whole. It is written to a temporary file in the data directory
as it arrives, and becomes visible only complete and checked (G-code text, or a sliced 3MF
archive): one rename puts it in place, then the store records it. Whatever fails on the way
leaves neither a file nor a row behind.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import os
import re
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from printfleet.cloud.store import FileMetadata, FileRecord, Store, new_id
from printfleet.sim.gcode_metadata import parse_metadata

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileKind",
    "FileStorage",
    "InvalidFile",
    "MalformedUpload",
    "MultipartFile",
    "UnsupportedFileType",
    "UploadRejected",
    "UploadTooLarge",
    "check_file",
    "kind_of",
]

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""200 MiB: a long multi-plate print, with room to spare."""

_WRITE_BATCH = 1024 * 1024
"""Bytes gathered before one write in a worker thread: fewer thread hops, bounded memory."""
_SNIFF_BYTES = 8192
_MAX_LINE = 256 * 1024
"""G-code lines are short; a "line" longer than this is binary data without newlines."""
_MAX_NOT_TEXT = 0.01
"""The share of bytes that may be invalid UTF-8 or control characters (a stray Latin-1 degree
sign in a comment is fine; a binary file is far above this)."""
_MAX_UNPACKED_FACTOR = 10
"""A 3MF may unpack to at most this many times the upload limit (a zip bomb would not)."""
_MAX_FORM_PREAMBLE = 64 * 1024
"""Bytes of other form fields tolerated before the file part."""
_ABANDONED_AFTER_S = 3600
"""An upload in progress this long without a write was left by a crashed process."""

_COMMAND = re.compile(r"\s*[GMT]\d+", re.IGNORECASE)
_THUMBNAIL = re.compile(r";\s*thumbnail(?:_\w+)? begin", re.IGNORECASE)
_PLATE = re.compile(r"Metadata/plate_(\d+)\.gcode")
_CONTROL_BYTES = bytes(sorted({*range(32), 127} - set(b"\t\n\r\f\v")))
_ZIP_MAGIC = b"PK\x03\x04"


class UploadRejected(Exception):  # noqa: N818 - reads as what happened to the upload
    """An upload that was not kept; the message says why, for the person who sent it."""


class UploadTooLarge(UploadRejected):
    """Larger than the configured limit (413)."""


class UnsupportedFileType(UploadRejected):
    """Not a file type printers take (415)."""


class InvalidFile(UploadRejected):
    """The right extension, the wrong contents: binary junk, a truncated archive (422)."""


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


# ---------------------------------------------------------------------------------------------
# Checking contents. Synchronous and file-based: they run in a worker thread after the upload.


@dataclass(slots=True)
class _TextStats:
    lines: int = 0
    size: int = 0
    not_text: int = 0
    commands: int = 0
    thumbnail: bool = False


def _checked_lines(raw: IO[bytes], stats: _TextStats, what: str) -> Iterator[str]:
    """The decoded lines of a G-code stream, checked as they are read; raises InvalidFile."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while line := raw.readline(_MAX_LINE + 1):
        stats.lines += 1
        stats.size += len(line)
        if len(line) > _MAX_LINE:
            raise InvalidFile(
                f"{what} has a line of over {_MAX_LINE} bytes: binary data, not G-code"
            )
        if b"\0" in line:
            raise InvalidFile(f"{what} contains binary data (a NUL byte on line {stats.lines})")
        text = decoder.decode(line)
        # Counted in C (translate, count): a Python loop per character would take minutes.
        controls = len(line) - len(line.translate(None, _CONTROL_BYTES))
        stats.not_text += text.count("\ufffd") + controls
        # Judge early too, so a large binary file is not read to its end first.
        if stats.size >= _SNIFF_BYTES and stats.not_text > stats.size * _MAX_NOT_TEXT:
            raise InvalidFile(f"{what} is not text: binary data, not G-code")
        if _COMMAND.match(text):
            stats.commands += 1
        elif not stats.thumbnail and _THUMBNAIL.match(text):
            stats.thumbnail = True
        yield text


def _check_gcode(raw: IO[bytes], what: str) -> FileMetadata:
    stats = _TextStats()
    metadata = parse_metadata(_checked_lines(raw, stats, what))
    if stats.not_text > stats.size * _MAX_NOT_TEXT:
        raise InvalidFile(f"{what} is not UTF-8 text: binary data, not G-code")
    if stats.commands == 0:
        raise InvalidFile(f"{what} contains no G-code commands (G1, M104, T0, ...)")
    estimated = metadata.estimated_time_s
    return FileMetadata(
        estimated_s=round(estimated) if estimated is not None else None,
        layers=metadata.layer_count,
        filament_mm=metadata.filament_mm,
        has_thumbnail=stats.thumbnail,
    )


def _check_3mf(path: Path, max_unpacked: int) -> FileMetadata:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            plates = sorted(
                (int(match[1]), member)
                for member in members
                if (match := _PLATE.fullmatch(member.filename))
            )
            if not plates:
                raise InvalidFile(
                    "the 3MF archive has no Metadata/plate_N.gcode: slice it and export the "
                    "plate's G-code (.gcode.3mf)"
                )
            if sum(member.file_size for member in members) > max_unpacked:
                raise InvalidFile(f"the 3MF archive unpacks to more than {max_unpacked} bytes")
            broken = archive.testzip()
            if broken is not None:
                raise InvalidFile(f"{broken} in the 3MF archive is corrupt (bad checksum)")
            first = plates[0][1]
            with archive.open(first) as plate:
                metadata = _check_gcode(plate, first.filename)
            thumbnail = any(
                member.filename.startswith("Metadata/") and member.filename.endswith(".png")
                for member in members
            )
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise InvalidFile(f"not a valid 3MF (zip) archive, truncated or corrupt: {error}") from None
    except (NotImplementedError, RuntimeError) as error:
        # An unsupported compression method, or an encrypted member.
        raise InvalidFile(f"the 3MF archive cannot be read: {error}") from None
    return FileMetadata(
        estimated_s=metadata.estimated_s,
        layers=metadata.layers,
        filament_mm=metadata.filament_mm,
        has_thumbnail=thumbnail or metadata.has_thumbnail,
    )


def check_file(
    path: Path, kind: FileKind, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
) -> FileMetadata:
    """Check a stored upload's contents and read its slicer metadata; raises InvalidFile.

    Blocking: it reads the whole file once (a 3MF twice: its checksums, then the plate).
    """
    if kind is FileKind.GCODE_3MF:
        return _check_3mf(path, max_bytes * _MAX_UNPACKED_FACTOR)
    with path.open("rb") as raw:
        return _check_gcode(raw, "the file")


def _sniff(kind: FileKind, head: bytes) -> None:
    """Refuse obvious junk from its first bytes, before the rest is even received."""
    if kind is FileKind.GCODE_3MF and not head.startswith(_ZIP_MAGIC):
        raise InvalidFile("not a 3MF (zip) archive: it does not start like one")
    if kind is FileKind.GCODE and b"\0" in head:
        raise InvalidFile("the file contains binary data (NUL bytes), not G-code")


# ---------------------------------------------------------------------------------------------
# Storage.


class FileStorage:
    """Print files in a directory, recorded in the store.

    Files live at ``root/<storage key>``; uploads in progress in ``root/.incoming``, on the
    same file system, so that moving one into place is a single atomic rename.
    """

    def __init__(
        self, root: Path, store: Store, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    ) -> None:
        self.root = root
        self.store = store
        self.max_bytes = max_bytes
        self._incoming = root / ".incoming"

    async def prepare(self) -> None:
        """Create the directories, and drop uploads a crash left half-written."""
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self._incoming.mkdir(parents=True, exist_ok=True)
        # Only old ones: replicas sharing the directory may be receiving uploads right now.
        abandoned = time.time() - _ABANDONED_AFTER_S
        for leftover in self._incoming.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < abandoned:
                    leftover.unlink()

    def path_of(self, file: FileRecord) -> Path:
        """Where a stored file's bytes are."""
        return self.root / file.storage_key

    async def save(self, owner_id: str, name: str, chunks: AsyncIterable[bytes]) -> FileRecord:
        """Receive, check and keep one file; raises an :class:`UploadRejected` subclass.

        The type is judged from ``name`` before a byte is read, and the size is counted as the
        bytes arrive, so neither a wrong type nor an oversized upload is received in full.
        """
        kind = kind_of(name)
        shown = clean_name(name) or f"upload{kind.value}"
        handle, temporary = await asyncio.to_thread(self._temporary)
        try:
            size, sha256 = await self._receive(handle, chunks, kind)
            metadata = await asyncio.to_thread(
                check_file, temporary, kind, max_bytes=self.max_bytes
            )
            storage_key = f"{new_id()}{kind.value}"
            final = self.root / storage_key
            await asyncio.to_thread(_move_into_place, handle, temporary, final)
            try:
                return await self.store.create_file(
                    owner_id,
                    name=shown,
                    size=size,
                    sha256=sha256,
                    storage_key=storage_key,
                    metadata=metadata,
                )
            except BaseException:
                # No row, so no file: an unrecorded file would never be served nor removed.
                await asyncio.to_thread(final.unlink, missing_ok=True)
                raise
        finally:
            # Runs to completion in its thread even if this task is being cancelled.
            await asyncio.to_thread(_discard, handle, temporary)

    def _temporary(self) -> tuple[IO[bytes], Path]:
        descriptor, name = tempfile.mkstemp(dir=self._incoming, suffix=".part")
        return os.fdopen(descriptor, "wb"), Path(name)

    async def _receive(
        self, handle: IO[bytes], chunks: AsyncIterable[bytes], kind: FileKind
    ) -> tuple[int, str]:
        hasher = hashlib.sha256()
        size = 0
        batch = bytearray()
        head = bytearray()
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_bytes:
                raise UploadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
            if len(head) < _SNIFF_BYTES:
                head += chunk[: _SNIFF_BYTES - len(head)]
                if len(head) >= _SNIFF_BYTES:
                    _sniff(kind, bytes(head))
            hasher.update(chunk)
            batch += chunk
            if len(batch) >= _WRITE_BATCH:
                await asyncio.to_thread(handle.write, bytes(batch))
                batch.clear()
        if size == 0:
            raise InvalidFile("the file is empty")
        _sniff(kind, bytes(head))
        # Flushed, so that the checks, which read the file by its path, see all of it.
        await asyncio.to_thread(_write_and_flush, handle, bytes(batch))
        return size, hasher.hexdigest()


def _move_into_place(handle: IO[bytes], temporary: Path, final: Path) -> None:
    # Durable before visible: a crash after the rename must not leave a short file behind a
    # row that promises its checksum.
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    temporary.replace(final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_and_flush(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)
    handle.flush()


def _discard(handle: IO[bytes], temporary: Path) -> None:
    handle.close()
    temporary.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Multipart, streamed.


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class MultipartFile:
    """The file part of a ``multipart/form-data`` body, read as the body arrives.

    ``await open()`` reads up to the file part's headers and returns its file name; then
    ``chunks()`` yields its bytes. The rest of the form (other fields, later parts) is ignored.
    """

    def __init__(
        self, content_type: str, body: AsyncIterator[bytes], *, field_name: str = "file"
    ) -> None:
        media_type, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise MalformedUpload(
                f"send the file as multipart/form-data in a field named {field_name!r}"
            )
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        try:
            self._parser = MultipartParser(boundary, callbacks)
        except MultipartParseError as error:
            raise MalformedUpload(f"bad multipart boundary: {error}") from None
        self._body = body
        self._field = field_name.encode()
        self._part = _Part()
        self._filename: str | None = None
        self._pending: list[bytes] = []
        self._file_done = False
        self._received = 0

    # Parser callbacks: they only collect; the coroutines below decide.

    def _part_begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        part = self._part
        part.headers[bytes(part.header_field).lower()] = bytes(part.header_value)
        part.header_field.clear()
        part.header_value.clear()

    def _headers_finished(self) -> None:
        if self._filename is not None:
            return  # only the first file part counts
        _, options = parse_options_header(self._part.headers.get(b"content-disposition"))
        filename = options.get(b"filename")
        if options.get(b"name") == self._field and filename is not None:
            self._part.is_file = True
            # Clients send the name as UTF-8 bytes; the header parser hands them back as is.
            self._filename = filename.decode("utf-8", errors="replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part.is_file:
            self._pending.append(data[start:end])

    def _part_end(self) -> None:
        if self._part.is_file:
            self._part.is_file = False
            self._file_done = True

    async def _feed(self) -> bool:
        """Parse the next piece of the body; False once the body has ended."""
        async for chunk in self._body:
            if chunk:
                self._received += len(chunk)
                try:
                    self._parser.write(chunk)
                except MultipartParseError as error:
                    raise MalformedUpload(f"malformed multipart body: {error}") from None
                return True
        return False

    async def open(self) -> str:
        """Read up to the file part; its file name. Raises MalformedUpload if there is none."""
        while self._filename is None:
            if self._received > _MAX_FORM_PREAMBLE:
                raise MalformedUpload("too much form data before the file")
            if not await self._feed():
                field_name = self._field.decode()
                raise MalformedUpload(f"the form has no file in a field named {field_name!r}")
        return self._filename

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive; raises MalformedUpload if the body ends first."""
        if self._filename is None:
            await self.open()
        while True:
            if self._pending:
                data = b"".join(self._pending)
                self._pending.clear()
                yield data
            if self._file_done:
                return
            if not await self._feed():
                raise MalformedUpload("the upload ended before the file did: it is truncated")
