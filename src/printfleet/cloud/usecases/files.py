"""Uploaded files as their owners see them, and the capability links printers fetch them by."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from printfleet.cloud.store import FileRecord, NotFound
from printfleet.cloud.usecases.ports import UploadedFiles
from printfleet.cloud.usecases.principal import Forbidden, Principal


class FileLinks:
    """Signed, expiring URLs under which printers fetch staged files without a token."""

    def __init__(
        self, public_url: str, secret: bytes, *, ttl_s: int, clock_ms: Callable[[], int]
    ) -> None:
        self.public_url = public_url
        self.ttl_s = ttl_s
        self._secret = secret
        self._clock_ms = clock_ms

    def link_for(self, file_id: str) -> str:
        """A capability URL a printer can fetch the file from, valid for ``ttl_s``."""
        expires = self._clock_ms() // 1000 + self.ttl_s
        token = self._token(file_id, expires)
        return f"{self.public_url}/printer-files/{file_id}?expires={expires}&token={token}"

    def check(self, file_id: str, expires: int, token: str) -> bool:
        """Whether a printer's file URL is genuine and unexpired."""
        if expires < self._clock_ms() // 1000:
            return False
        # Bytes, not str: compare_digest refuses non-ASCII text, and a forged link may hold any.
        expected = self._token(file_id, expires).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogatepass"))

    def _token(self, file_id: str, expires: int) -> str:
        message = f"{file_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


class FileActions:
    """What people do with their uploaded files (uploading itself is ``FileStorage``'s)."""

    def __init__(self, files: UploadedFiles, links: FileLinks) -> None:
        self.files = files
        self.links = links

    async def files_for(self, principal: Principal) -> list[FileRecord]:
        """The caller's uploaded files, newest first."""
        return await self.files.for_owner(principal.user.id)

    async def file(self, principal: Principal, file_id: str) -> FileRecord:
        """One of the caller's files; anyone else's is NotFound, as a missing one is."""
        try:
            file = await self.files.get(file_id)
        except NotFound:
            file = None
        if file is None or file.owner_id != principal.user.id:
            raise NotFound(f"no file {file_id}")
        return file

    async def for_printer(self, file_id: str, expires: int, token: str) -> FileRecord:
        """The file a printer's link names (no account needed): :class:`Forbidden` unless the
        link is genuine and unexpired."""
        if not self.links.check(file_id, expires, token):
            raise Forbidden("this file link is not genuine or has expired")
        return await self.files.get(file_id)
