"""Print files in a directory: an upload streamed to disk while hashed and counted, checked,
put in place by one rename, then recorded in the store; whatever fails on the way leaves
neither a file nor a row behind."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterable
from pathlib import Path
from typing import IO, Protocol

from printfleet.cloud.files.checks import (
    SNIFF_BYTES,
    ArchiveLimits,
    UploadChecks,
    check_file,
    sniff,
)
from printfleet.cloud.files.kinds import FileKind, InvalidFile, UploadTooLarge, clean_name, kind_of
from printfleet.cloud.store import FileMetadata, FileRecord, new_id

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""200 MiB: a long multi-plate print, with room to spare."""

_WRITE_BATCH = 1024 * 1024
"""Bytes gathered before one write in a worker thread: fewer thread hops, bounded memory."""
_ABANDONED_AFTER_S = 3600
"""An upload in progress this long without a write was left by a crashed process."""


class FileRecords(Protocol):
    """What file storage needs of the store: to record a file once its bytes are in place."""

    async def create(
        self,
        owner_id: str,
        *,
        name: str,
        size: int,
        sha256: str,
        storage_key: str,
        metadata: FileMetadata | None = None,
    ) -> FileRecord:
        """Record an uploaded file whose bytes are stored under ``storage_key``."""
        ...


class FileStorage:
    """Print files in a directory, recorded in the store (its ``files`` repository).

    Files live at ``root/<storage key>``; uploads in progress in ``root/.incoming``, on the
    same file system, so that moving one into place is a single atomic rename.
    """

    def __init__(
        self,
        root: Path,
        records: FileRecords,
        *,
        max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        limits: ArchiveLimits | None = None,
        checks: UploadChecks | None = None,
    ) -> None:
        self.root = root
        self.records = records
        self.max_bytes = max_bytes
        self.limits = limits if limits is not None else ArchiveLimits()
        self.checks = checks if checks is not None else UploadChecks()
        self._incoming = root / ".incoming"

    async def prepare(self) -> None:
        """Create the directories, and drop uploads a crash left half-written."""
        await asyncio.to_thread(self._prepare)

    def close(self) -> None:
        """Stop taking checks (at shutdown); those under way finish in their threads."""
        self.checks.close()

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
            metadata = await self.checks.run(
                functools.partial(check_file, temporary, kind, limits=self.limits)
            )
            storage_key = f"{new_id()}{kind.value}"
            final = self.root / storage_key
            await asyncio.to_thread(_move_into_place, handle, temporary, final)
            try:
                return await self.records.create(
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
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    sniff(kind, bytes(head))
            hasher.update(chunk)
            batch += chunk
            if len(batch) >= _WRITE_BATCH:
                await asyncio.to_thread(handle.write, bytes(batch))
                batch.clear()
        if size == 0:
            raise InvalidFile("the file is empty")
        sniff(kind, bytes(head))
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
