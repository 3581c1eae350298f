"""The simulated SD card: a flat directory of files, with file I/O kept off the event loop."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from printfleet.agent.hardware import StoredFile, validate_file_name

__all__ = ["SimStorage", "read_chunk"]


class SimStorage:
    """A `Storage` kept in one directory, created on first write so idle printers cost no inode.

    Every file operation runs in a worker thread: a blocking call on the event loop would stall
    every other printer in the process. Writes go to a hidden temporary file that is renamed into
    place, so a reader sees the old file or the new one, never half of one.
    """

    __slots__ = ("_root",)

    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        """The directory that holds the files."""
        return self._root

    def path_of(self, name: str) -> Path:
        """The path of a stored file, after checking its name."""
        return self._root / validate_file_name(name)

    async def list_files(self) -> list[StoredFile]:
        """All files with valid names (temporary files are hidden), sorted by name."""
        return await asyncio.to_thread(self._list)

    async def write(self, name: str, data: bytes | AsyncIterable[bytes]) -> StoredFile:
        """Create or replace `name` with `data` (bytes, or chunks streamed in)."""
        path = self.path_of(name)
        if isinstance(data, bytes):
            size = await asyncio.to_thread(self._write_all, path, data)
            return StoredFile(name, size)
        handle, temp = await asyncio.to_thread(self._open_temp)
        try:
            size = 0
            async for chunk in data:
                size += await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(temp.replace, path)
        finally:
            if not handle.closed:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(temp.unlink, missing_ok=True)
        return StoredFile(name, size)

    async def read(self, name: str) -> bytes:
        """The whole of `name`."""
        return await asyncio.to_thread(self.path_of(name).read_bytes)

    async def read_chunks(self, name: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """`name` in chunks of at most `chunk_size` bytes."""
        path = self.path_of(name)
        offset = 0
        while chunk := await asyncio.to_thread(read_chunk, path, offset, chunk_size):
            offset += len(chunk)
            yield chunk

    async def delete(self, name: str) -> None:
        """Remove `name`."""
        await asyncio.to_thread(self.path_of(name).unlink)

    async def size_of(self, name: str) -> int:
        """The size of `name` in bytes; raises `FileNotFoundError` if it is missing."""
        return (await asyncio.to_thread(self.path_of(name).stat)).st_size

    def _list(self) -> list[StoredFile]:
        if not self._root.is_dir():
            return []
        files: list[StoredFile] = []
        for entry in os.scandir(self._root):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                validate_file_name(entry.name)
            except ValueError:
                continue
            files.append(StoredFile(entry.name, entry.stat(follow_symlinks=False).st_size))
        return sorted(files, key=lambda f: f.name)

    def _open_temp(self) -> tuple[BinaryIO, Path]:
        self._root.mkdir(parents=True, exist_ok=True)
        # A leading dot keeps the temporary file out of listings: no valid name starts with one.
        fd, temp = tempfile.mkstemp(dir=self._root, prefix=".upload-")
        return os.fdopen(fd, "wb"), Path(temp)

    def _write_all(self, path: Path, data: bytes) -> int:
        handle, temp = self._open_temp()
        try:
            with handle:
                handle.write(data)
            temp.replace(path)
        finally:
            temp.unlink(missing_ok=True)
        return len(data)


def read_chunk(path: Path, offset: int, size: int) -> bytes:
    """Read up to `size` bytes of `path` from `offset` (blocking; call it from a worker thread)."""
    with path.open("rb") as source:
        source.seek(offset)
        return source.read(size)
