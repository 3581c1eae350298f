"""Checking an upload's contents (text G-code; a complete, bounded ``.gcode.3mf`` archive) and
reading its slicer metadata, in worker threads of their own, a bounded number at once.

Synchronous and file-based: the checks run in an :class:`UploadChecks` worker thread."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from printfleet.cloud.files.kinds import ChecksBusy, FileKind, InvalidFile, UploadTooLarge
from printfleet.cloud.store import FileMetadata
from printfleet.gcode.metadata import MetadataReader

SNIFF_BYTES = 8192
"""The first bytes of an upload :func:`sniff` judges it by."""
_MAX_LINE = 256 * 1024
"""G-code lines are short; a "line" longer than this is binary data without newlines."""
_MAX_NOT_TEXT = 0.01
"""The share of bytes that may be invalid UTF-8 or control characters (a stray Latin-1 degree
sign in a comment is fine; a binary file is far above this)."""
_BLOCK = 256 * 1024
"""Bytes checked per step: large enough for C-level scans to dominate, small enough that a
check thread gives the event loop the GIL back often."""
_RATIO_GRACE = 64 * 1024
"""Unpacked bytes allowed whatever the compression ratio: tiny files deflate far better."""
DEFAULT_CHECK_WORKERS = 2
"""Uploads checked at once: the cores of a small server, leaving the event loop its share."""
DEFAULT_CHECK_WAIT_S = 10.0
"""How long an upload waits for a check turn before 503."""
_COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
"""What OPC (3MF's container) allows. bzip2 and LZMA also inflate without a bound per read."""
_ENCRYPTED = 0x1
_ARCHIVE_SUFFIXES = (
    ".zip",
    ".3mf",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".lzma",
    ".zst",
    ".7z",
    ".rar",
    ".tar",
)
_ARCHIVE_MAGICS = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x28\xb5\x2f\xfd",
    b"Rar!\x1a\x07",
)
_END_SIGNATURE = b"PK\x05\x06"
_END_RECORD = 22
_MAX_COMMENT = 0xFFFF
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR = 20
_ZIP64_SIGNATURE = b"PK\x06\x06"
_ZIP64_RECORD = 56
_MAX_ENTRY = 46 + 1024
"""Bytes one directory entry may take (fixed part, name, extras): a bound on the directory's
size from the member limit, checked before zipfile reads it."""

_COMMAND = re.compile(r"^\s*[GMT]\d", re.IGNORECASE | re.MULTILINE)
_THUMBNAIL = re.compile(r"^;\s*thumbnail(?:_\w+)? begin", re.IGNORECASE | re.MULTILINE)
_PLATE = re.compile(r"Metadata/plate_(\d+)\.gcode")
_CONTROL_BYTES = bytes(sorted({*range(32), 127} - set(b"\t\n\r\f\v")))
_ZIP_MAGIC = b"PK\x03\x04"


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _check_gcode(raw: _Readable, what: str) -> FileMetadata:
    """Check a G-code stream a block of whole lines at a time; raises InvalidFile.

    Each block is judged by C-level scans (split, find, translate, decode, regex) rather than a
    Python step per line, which made a large file cost a second of CPU per few megabytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    metadata = MetadataReader()
    size = lines = not_text = 0
    commands = thumbnail = False
    tail = b""
    while True:
        chunk = raw.read(_BLOCK)
        data = tail + chunk
        cut = data.rfind(b"\n") + 1 if chunk else len(data)
        block, tail = data[:cut], data[cut:]
        if len(tail) >= _MAX_LINE or max(map(len, block.split(b"\n"))) >= _MAX_LINE:
            raise InvalidFile(
                f"{what} has a line of over {_MAX_LINE} bytes: binary data, not G-code"
            )
        if (nul := block.find(b"\0")) >= 0:
            line = lines + block.count(b"\n", 0, nul) + 1
            raise InvalidFile(f"{what} contains binary data (a NUL byte on line {line})")
        lines += block.count(b"\n")
        size += len(block)
        text = decoder.decode(block, final=not chunk)
        controls = len(block) - len(block.translate(None, _CONTROL_BYTES))
        not_text += text.count("\ufffd") + controls
        # Judged on every block, so a large binary file is not read to its end first.
        if size >= SNIFF_BYTES and not_text > size * _MAX_NOT_TEXT:
            raise InvalidFile(f"{what} is not text: binary data, not G-code")
        commands = commands or _COMMAND.search(text) is not None
        thumbnail = thumbnail or _THUMBNAIL.search(text) is not None
        metadata.feed_lines(text)
        if not chunk:
            break
    if not_text > size * _MAX_NOT_TEXT:
        raise InvalidFile(f"{what} is not UTF-8 text: binary data, not G-code")
    if not commands:
        raise InvalidFile(f"{what} contains no G-code commands (G1, M104, T0, ...)")
    found = metadata.result()
    estimated = found.estimated_time_s
    return FileMetadata(
        estimated_s=round(estimated) if estimated is not None else None,
        layers=found.layer_count,
        filament_mm=found.filament_mm,
        filament_g=found.filament_g,
        material=found.material,
        nozzle_um=found.nozzle_um,
        has_thumbnail=thumbnail,
    )


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How far a ``.gcode.3mf`` may unpack, and into what.

    Every bound is checked on the archive's directory before a byte is inflated, then again on
    the bytes as they are inflated, so an archive that lies in its directory is stopped at the
    bound too, never after unpacking in full.
    """

    max_members: int = 1024
    """Files in the archive. A sliced project holds a few dozen."""
    max_member_bytes: int = 256 * 1024 * 1024
    """What one member may unpack to: 256 MiB, a plate's G-code for a long print, with room."""
    max_total_bytes: int = 512 * 1024 * 1024
    """What all members together may unpack to: 512 MiB."""
    max_ratio: float = 100.0
    """Unpacked over compressed size, per member and for the whole archive. G-code deflates to
    about a quarter, XML to a tenth; a decompression bomb to a thousandth."""

    def __post_init__(self) -> None:
        if min(self.max_members, self.max_member_bytes, self.max_total_bytes) < 1:
            raise ValueError(f"archive limits must be positive: {self}")
        if self.max_ratio < 1:
            raise ValueError(f"max_ratio must be at least 1, got {self.max_ratio}")


def _too_packed(unpacked: int, packed: int, ratio: float) -> bool:
    return unpacked > ratio * packed + _RATIO_GRACE


class _Unpacked:
    """Running totals over an archive as it is inflated: the caps, applied to real bytes."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int) -> None:
        self.limits = limits
        self.archive_bytes = archive_bytes
        self.total = 0

    def count(self, member: zipfile.ZipInfo, before: int, more: int) -> None:
        limits = self.limits
        self.total += more
        unpacked = before + more
        if unpacked > limits.max_member_bytes:
            raise _member_too_large(member.filename, limits)
        if self.total > limits.max_total_bytes:
            raise _archive_too_large(limits)
        if _too_packed(unpacked, member.compress_size, limits.max_ratio):
            raise _member_too_packed(member.filename, limits)
        if _too_packed(self.total, self.archive_bytes, limits.max_ratio):
            raise _archive_too_packed(limits)


class _BoundedMember:
    """One archive member, read as it is inflated and stopped as soon as a bound is passed."""

    def __init__(self, opened: IO[bytes], member: zipfile.ZipInfo, totals: _Unpacked) -> None:
        self._opened = opened
        self._member = member
        self._totals = totals
        self._read = 0

    def read(self, size: int = -1, /) -> bytes:
        # zipfile inflates at most about ``size`` bytes per call (and never past the size the
        # directory states), so a bomb is stopped within one block of its bound.
        data = self._opened.read(_BLOCK if size < 0 else min(size, _BLOCK))
        self._totals.count(self._member, self._read, len(data))
        self._read += len(data)
        return data


def _too_many_members(count: int, limits: ArchiveLimits) -> InvalidFile:
    return InvalidFile(
        f"the 3MF archive has {count} members, more than the limit of {limits.max_members}"
    )


def _member_too_large(name: str, limits: ArchiveLimits) -> UploadTooLarge:
    return UploadTooLarge(
        f"{name} in the 3MF archive unpacks to more than {limits.max_member_bytes} bytes, "
        "the limit for one member"
    )


def _archive_too_large(limits: ArchiveLimits) -> UploadTooLarge:
    return UploadTooLarge(
        f"the 3MF archive unpacks to more than {limits.max_total_bytes} bytes, "
        "the limit for a whole archive"
    )


def _member_too_packed(name: str, limits: ArchiveLimits) -> InvalidFile:
    return InvalidFile(
        f"{name} in the 3MF archive unpacks to more than {limits.max_ratio:g} times its "
        "compressed size, the limit: a decompression bomb, not a sliced print"
    )


def _archive_too_packed(limits: ArchiveLimits) -> InvalidFile:
    return InvalidFile(
        f"the 3MF archive unpacks to more than {limits.max_ratio:g} times its size, the limit: "
        "a decompression bomb, not a sliced print"
    )


def _directory_size(handle: IO[bytes], archive_bytes: int) -> tuple[int, int]:
    """The member count and central directory size an archive's end record states.

    Read before zipfile parses the directory, which it does in full and in Python: a directory
    of millions of tiny entries would cost seconds and gigabytes before any count is checked.
    """
    # Found as zipfile finds it, so that both read the same record: at the very end if the
    # archive has no comment, else the last signature within a comment's reach.
    start = max(archive_bytes - _END_RECORD - _MAX_COMMENT, 0)
    handle.seek(start)
    tail = handle.read()
    at = len(tail) - _END_RECORD
    if at < 0 or not (tail.startswith(_END_SIGNATURE, at) and tail.endswith(b"\0\0")):
        at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END_RECORD:
        raise InvalidFile(
            "not a valid 3MF (zip) archive, truncated or corrupt: it has no end record"
        )
    members, directory = struct.unpack_from("<HL", tail, at + 10)
    # zipfile takes a zip64 record from just before its locator, which precedes the end record.
    locator = start + at - _ZIP64_LOCATOR
    handle.seek(max(locator - _ZIP64_RECORD, 0))
    before = handle.read(_ZIP64_RECORD + _ZIP64_LOCATOR)
    if locator >= _ZIP64_RECORD and before.startswith(_ZIP64_LOCATOR_SIGNATURE, _ZIP64_RECORD):
        if not before.startswith(_ZIP64_SIGNATURE):
            raise InvalidFile(
                "not a valid 3MF (zip) archive, truncated or corrupt: bad zip64 record"
            )
        members, directory = struct.unpack_from("<QQ", before, 32)
    return members, directory


def _check_members(
    members: list[zipfile.ZipInfo], archive_bytes: int, limits: ArchiveLimits
) -> None:
    """Refuse, from the directory alone, what is not a plain set of files within the limits."""
    if len(members) > limits.max_members:
        raise _too_many_members(len(members), limits)
    seen: set[str] = set()
    for member in members:
        name = member.filename
        if name in seen:
            raise InvalidFile(f"{name} appears twice in the 3MF archive: which one is meant?")
        seen.add(name)
        parts = name.split("/")
        if (
            not name
            or name.startswith("/")
            or "\\" in name
            or ":" in parts[0]
            or ".." in parts
            or any(unicodedata.category(c) == "Cc" for c in name)
        ):
            raise InvalidFile(f"{name!r} in the 3MF archive is not a plain relative path")
        if member.flag_bits & _ENCRYPTED:
            raise InvalidFile(f"{name} in the 3MF archive is encrypted")
        if member.compress_type not in _COMPRESSIONS:
            raise InvalidFile(
                f"{name} in the 3MF archive is compressed with method {member.compress_type}: "
                "3MF allows only stored and deflated members"
            )
        if stat.S_ISLNK(member.external_attr >> 16):
            raise InvalidFile(f"{name} in the 3MF archive is a symbolic link")
        if name.lower().endswith(_ARCHIVE_SUFFIXES):
            raise InvalidFile(
                f"{name} in the 3MF archive is an archive itself: nested archives are refused"
            )
        if member.file_size > limits.max_member_bytes:
            raise _member_too_large(name, limits)
        if _too_packed(member.file_size, member.compress_size, limits.max_ratio):
            raise _member_too_packed(name, limits)
    if sum(member.compress_size for member in members) > archive_bytes:
        raise InvalidFile(
            "the 3MF archive's members claim more bytes than it has: they overlap, which only "
            "a decompression bomb needs"
        )
    unpacked = sum(member.file_size for member in members)
    if unpacked > limits.max_total_bytes:
        raise _archive_too_large(limits)
    if _too_packed(unpacked, archive_bytes, limits.max_ratio):
        raise _archive_too_packed(limits)


def _check_3mf(path: Path, limits: ArchiveLimits) -> FileMetadata:
    try:
        with path.open("rb") as handle:
            archive_bytes = os.fstat(handle.fileno()).st_size
            count, directory = _directory_size(handle, archive_bytes)
            if count > limits.max_members:
                raise _too_many_members(count, limits)
            if directory > limits.max_members * _MAX_ENTRY:
                raise InvalidFile(
                    f"the 3MF archive's directory takes {directory} bytes: more members than "
                    f"the limit of {limits.max_members} need"
                )
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                return _check_archive(archive, archive_bytes, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as error:
        raise InvalidFile(f"not a valid 3MF (zip) archive, truncated or corrupt: {error}") from None
    except (NotImplementedError, RuntimeError) as error:
        raise InvalidFile(f"the 3MF archive cannot be read: {error}") from None


def _check_archive(
    archive: zipfile.ZipFile, archive_bytes: int, limits: ArchiveLimits
) -> FileMetadata:
    members = archive.infolist()
    _check_members(members, archive_bytes, limits)
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
    first = plates[0][1]
    totals = _Unpacked(limits, archive_bytes)
    metadata: FileMetadata | None = None
    # One pass over every member: each is inflated once, which checks its CRC (a corrupt
    # member raises BadZipFile at its end) and its magic, and the first plate is read as
    # G-code on the way.
    for member in members:
        if member.is_dir():
            continue
        with archive.open(member) as opened:
            bounded = _BoundedMember(opened, member, totals)
            if member is first:
                metadata = _check_gcode(bounded, member.filename)
                continue
            if bounded.read(_BLOCK).startswith(_ARCHIVE_MAGICS):
                raise InvalidFile(
                    f"{member.filename} in the 3MF archive is an archive itself: nested "
                    "archives are refused"
                )
            while bounded.read(_BLOCK):
                pass
    assert metadata is not None  # noqa: S101 - the first plate is one of the members read
    thumbnail = any(
        member.filename.startswith("Metadata/") and member.filename.endswith(".png")
        for member in members
    )
    return FileMetadata(
        estimated_s=metadata.estimated_s,
        layers=metadata.layers,
        filament_mm=metadata.filament_mm,
        filament_g=metadata.filament_g,
        material=metadata.material,
        nozzle_um=metadata.nozzle_um,
        has_thumbnail=thumbnail or metadata.has_thumbnail,
    )


def check_file(
    path: Path,
    kind: FileKind,
    *,
    limits: ArchiveLimits = ArchiveLimits(),
) -> FileMetadata:
    """Check a stored upload's contents and read its slicer metadata; raises UploadRejected.

    Blocking and CPU-bound: it reads the whole file once (a 3MF: every member, inflated within
    ``limits``). Run it through :class:`UploadChecks`, not on the default executor.
    """
    if kind is FileKind.GCODE_3MF:
        return _check_3mf(path, limits)
    with path.open("rb") as raw:
        return _check_gcode(raw, "the file")


def sniff(kind: FileKind, head: bytes) -> None:
    """Refuse obvious junk from its first bytes, before the rest is even received."""
    if kind is FileKind.GCODE_3MF and not head.startswith(_ZIP_MAGIC):
        raise InvalidFile("not a 3MF (zip) archive: it does not start like one")
    if kind is FileKind.GCODE and b"\0" in head:
        raise InvalidFile("the file contains binary data (NUL bytes), not G-code")


# ---------------------------------------------------------------------------------------------
# Where checks run.


class UploadChecks:
    """Worker threads of the uploads' own, for checking contents, a bounded number at once.

    Checks are CPU-bound. On the default executor, which ``asyncio.to_thread`` shares with
    password hashing and the store's other blocking calls, a few large uploads took every
    worker and made logins queue behind them. Here at most ``workers`` run at once; an upload
    that cannot get a turn within ``wait_s`` is refused with :class:`ChecksBusy` (503).
    """

    def __init__(
        self, workers: int = DEFAULT_CHECK_WORKERS, wait_s: float = DEFAULT_CHECK_WAIT_S
    ) -> None:
        if workers < 1 or wait_s < 0:
            raise ValueError(f"need at least one worker and a wait >= 0: {workers}, {wait_s}")
        self.workers = workers
        self.wait_s = wait_s
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="printfleet-upload-check")
        self._turns = asyncio.Semaphore(workers)
        self.running = 0
        """Checks running now."""

    async def run(self, check: Callable[[], FileMetadata]) -> FileMetadata:
        """Run ``check`` in a worker thread once a turn is free; raises ChecksBusy after wait_s."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._turns.acquire()
        except TimeoutError:
            raise ChecksBusy(
                f"every upload check is taken (the limit is {self.workers} at once) and none "
                f"came free within {self.wait_s:g} s: send the file again in a few seconds"
            ) from None
        loop = asyncio.get_running_loop()
        self.running += 1

        def ended(_: Future[FileMetadata]) -> None:
            # The turn is given back when the thread is really done, not when the awaiting
            # request is cancelled: a thread cannot be stopped, and its CPU is what is bounded.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._give_back)

        try:
            future = self._executor.submit(check)
        except BaseException:
            self._give_back()
            raise
        future.add_done_callback(ended)
        return await asyncio.wrap_future(future)

    def _give_back(self) -> None:
        self.running -= 1
        self._turns.release()

    def close(self) -> None:
        """Refuse new checks; those under way finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
