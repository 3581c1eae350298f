"""Print files: streamed uploads for people, capability links for printers.

``POST /api/v1/files`` parses the multipart body as it arrives and hands the file part to
:class:`~printfleet.cloud.files.FileStorage`, so the size limit is enforced while receiving.
``GET /printer-files/{id}`` needs no account: the signed, expiring link the dispatcher put in
a stage command is the permission.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, ErrorBody
from printfleet.cloud.api.schemas import FileOut
from printfleet.cloud.files import MalformedUpload, MultipartFile, UploadTooLarge
from printfleet.cloud.store import NotFound

router = APIRouter(tags=["files"], responses=ERROR_RESPONSES)

UPLOAD_PATH = "/api/v1/files"
"""Where files are uploaded: the one route that streams its body, under a limit of its own."""

_FORM_OVERHEAD = 64 * 1024
"""Room for multipart boundaries and headers around the file itself."""

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A .gcode or .gcode.3mf file",
                        }
                    },
                }
            }
        },
    }
}


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise MalformedUpload("the client went away during the upload") from None


@router.post(
    UPLOAD_PATH,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    responses={
        400: {"model": ErrorBody, "description": "Not a multipart body with a file part"},
        413: {
            "model": ErrorBody,
            "description": "Larger than the upload limit, or a .gcode.3mf that unpacks to more "
            "than the archive limits",
        },
        415: {"model": ErrorBody, "description": "Not .gcode or .gcode.3mf"},
        422: {
            "model": ErrorBody,
            "description": "Not G-code, or an archive that is corrupt, a decompression bomb, or "
            "holds too many or odd members",
        },
        503: {
            "model": ErrorBody,
            "description": "Every upload check is busy (or the store is); retry after "
            "Retry-After seconds",
        },
    },
)
async def upload_file(request: Request, principal: Writer, context: Context) -> FileOut:
    """Upload a print file (multipart field ``file``): G-code, or a sliced ``.gcode.3mf``.

    The file is checked (text G-code; a complete archive with a plate's G-code, unpacked within
    the archive limits) and its slicer metadata read, a bounded number at once. A rejected
    upload leaves nothing behind.
    """
    limit = context.files.max_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + _FORM_OVERHEAD:
        # Refused before a byte of it is read.
        raise UploadTooLarge(f"the upload is larger than the limit of {limit} bytes")
    form = MultipartFile(request.headers.get("content-type", ""), _body(request))
    name = await form.open()
    record = await context.files.save(principal.user.id, name, form.chunks())
    return FileOut.of(record)


@router.get("/api/v1/files")
async def list_files(principal: Reader, context: Context) -> list[FileOut]:
    """The caller's files, newest first."""
    return [FileOut.of(file) for file in await context.service.files.files_for(principal)]


@router.get("/api/v1/files/{file_id}")
async def get_file(file_id: str, principal: Reader, context: Context) -> FileOut:
    """One of the caller's files."""
    return FileOut.of(await context.service.files.file(principal, file_id))


@router.get(
    "/printer-files/{file_id}",
    tags=["printer traffic"],
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def printer_file(file_id: str, expires: int, token: str, context: Context) -> FileResponse:
    """A file for a printer to stage, by the link in its stage command (no account needed)."""
    record = await context.service.files.for_printer(file_id, expires, token)
    path = context.files.path_of(record)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"the bytes of file {file_id} are missing from this server")
    return FileResponse(path, media_type="application/octet-stream")
