"""``multipart/form-data`` upload bodies, parsed as they stream in: only the file part is
kept, and nothing of it sits in memory whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from printfleet.cloud.files.kinds import MalformedUpload

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks


_MAX_FORM_PREAMBLE = 64 * 1024
"""Bytes of other form fields tolerated before the file part."""


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
