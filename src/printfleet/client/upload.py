"""A print file as a streamed ``multipart/form-data`` body, with progress reports.

The body is produced a chunk at a time (the file is never held in memory), its length is known
up front (the server refuses oversized uploads before reading them), and the caller hears how
many of the file's bytes have gone out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

__all__ = ["CHUNK_BYTES", "Progress", "UploadBody"]

CHUNK_BYTES = 64 * 1024

Progress = Callable[[int, int], None]
"""Called as ``progress(sent, total)`` with the file's bytes sent so far and its size."""


def _quoted(name: str) -> str:
    # The form-data filename is a quoted string: escape what would end or break it.
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class UploadBody:
    """The multipart body of one upload of ``path`` (sent as field ``file``)."""

    path: Path
    name: str | None = None
    """The file name the server records; the path's name by default."""
    boundary: str = field(default_factory=lambda: f"printfleet-{uuid.uuid4().hex}")

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"no such file: {self.path}")
        self.size = self.path.stat().st_size
        name = self.name or self.path.name
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quoted(name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def headers(self) -> dict[str, str]:
        """The request headers the body needs."""
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(len(self._head) + self.size + len(self._tail)),
        }

    def chunks(self, progress: Progress | None = None) -> Iterator[bytes]:
        """The body, for a blocking sender."""
        yield self._head
        sent = 0
        with self.path.open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                yield chunk
                sent += len(chunk)
                if progress is not None:
                    progress(sent, self.size)
        yield self._tail

    async def async_chunks(self, progress: Progress | None = None) -> AsyncIterator[bytes]:
        """The body, for an async sender (the file is read off the event loop)."""
        yield self._head
        sent = 0
        async with await anyio.open_file(self.path, "rb") as source:
            while chunk := await source.read(CHUNK_BYTES):
                yield chunk
                sent += len(chunk)
                if progress is not None:
                    progress(sent, self.size)
        yield self._tail
