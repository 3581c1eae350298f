"""Staging: the file of a job is downloaded by URL into the printer's storage and checked.

The first of a start's two phases: no physical effect, and safe to retry. The file counts as
staged only once it is stored whole with the sha256 the cloud announced; a wrong one is deleted.
"""

import contextlib
import hashlib
from collections.abc import AsyncIterator

import httpx

from printfleet.agent.hardware import Hardware
from printfleet.log_redaction import redact
from printfleet.protocol.gate import FetchFile

MAX_FILE_BYTES = 512 * 1024 * 1024


class FileStager:
    """Fetches staged files into the printer's storage, with ``http`` or a client per fetch."""

    __slots__ = ("_hardware", "_http")

    def __init__(self, hardware: Hardware, http: httpx.AsyncClient | None = None) -> None:
        self._hardware = hardware
        self._http = http

    async def fetch(self, action: FetchFile) -> str | None:
        """Store the file ``action`` names; None once it is stored and checked, else why not."""
        try:
            digest = await self._download(action)
        except (httpx.HTTPError, OSError, ValueError) as error:
            # An HTTP error names the URL, token and all; the detail is logged and sent on.
            return f"download failed: {redact(str(error))}"
        if digest != action.sha256:
            with contextlib.suppress(FileNotFoundError):
                await self._hardware.storage.delete(action.name)
            return f"sha256 mismatch: got {digest[:12]}…, expected {action.sha256[:12]}…"
        return None

    async def _download(self, action: FetchFile) -> str:
        hasher = hashlib.sha256()
        client = self._http or httpx.AsyncClient(timeout=30)
        try:
            async with client.stream("GET", action.url) as response:
                response.raise_for_status()

                async def chunks() -> AsyncIterator[bytes]:
                    received = 0
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > MAX_FILE_BYTES or received > action.size:
                            msg = f"file is larger than the announced {action.size} bytes"
                            raise ValueError(msg)
                        hasher.update(chunk)
                        yield chunk

                await self._hardware.storage.write(action.name, chunks())
        finally:
            if self._http is None:
                await client.aclose()
        return hasher.hexdigest()
