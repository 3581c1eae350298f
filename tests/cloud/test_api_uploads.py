"""Uploads through the HTTP API: good files are kept with their metadata; bad ones get a clear
4xx and leave nothing behind, neither a file on disk nor a row. Printers fetch files by
capability link only."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from tests.cloud.test_api import (
    GCODE,
    Running,
    api_database_url,
    bearer,
    serving,
    settings_for,
    sign_up,
    upload,
)

from printfleet.cloud.files import (
    FileKind,
    InvalidFile,
    MultipartFile,
    UnsupportedFileType,
    check_file,
    clean_name,
    kind_of,
)
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name

LIMIT = 256 * 1024
BOUNDARY = "printfleet-test-boundary"


@pytest_asyncio.fixture
async def small_cloud(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> AsyncIterator[Running]:
    """A cloud whose upload limit is 256 KiB, so oversized uploads are cheap to make."""
    settings = settings_for(tmp_path, api_database_url, mosquitto.url, max_upload_bytes=LIMIT)
    async with serving(settings) as running:
        yield running


def sliced_3mf(*, plate: bytes = GCODE, thumbnail: bool = True) -> bytes:
    """A .gcode.3mf as Bambu Studio and Orca export it, reduced to what matters."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("3D/3dmodel.model", "<model/>")
        archive.writestr("Metadata/plate_1.gcode", plate)
        archive.writestr("Metadata/plate_1.gcode.md5", "0" * 32)
        if thumbnail:
            archive.writestr("Metadata/plate_1.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return buffer.getvalue()


def stored_files(cloud: Running) -> list[str]:
    """Every file under the storage directory, in-progress uploads included."""
    root = cloud.context.files.root
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def multipart_head(name: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


async def streamed(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def post_stream(cloud: Running, token: str, parts: list[bytes]) -> httpx.Response:
    """POST a multipart body in pieces, without a Content-Length (chunked)."""
    return await cloud.client.post(
        "/api/v1/files",
        headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        content=streamed(parts),
    )


@pytest.mark.asyncio
async def test_good_files_are_kept_with_their_metadata(small_cloud: Running) -> None:
    cloud = small_cloud
    token = await sign_up(cloud.client, "maker@example.org")
    gcode = await upload(cloud.client, token, "benchy/Cube ü.gcode")
    assert gcode.status_code == 201, gcode.text
    body = gcode.json()
    assert body["name"] == "Cube ü.gcode"  # no folders from the client's path
    assert body["size"] == len(GCODE)
    assert body["metadata"] == {
        "estimated_s": 8,
        "layers": 3,
        "filament_mm": 7.98,
        "filament_g": 0.02,  # the sample's PrusaSlicer-style footer
        "material": None,  # which names none
        "has_thumbnail": False,
        "nozzle_um": None,  # nor its nozzle
    }
    project = await upload(cloud.client, token, "cube.gcode.3mf", sliced_3mf())
    assert project.status_code == 201, project.text
    assert project.json()["metadata"]["layers"] == 3
    assert project.json()["metadata"]["has_thumbnail"] is True

    listed = await cloud.client.get("/api/v1/files", headers=bearer(token))
    assert [f["id"] for f in listed.json()] == [project.json()["id"], body["id"]]
    one = await cloud.client.get(f"/api/v1/files/{body['id']}", headers=bearer(token))
    assert one.json() == body
    files = [f for f in stored_files(cloud) if not f.startswith(".incoming")]
    assert len(files) == 2
    assert {Path(f).name.endswith(".gcode.3mf") for f in files} == {True, False}

    # A printer fetches by capability link: no account, but a genuine, unexpired token.
    link = cloud.context.service.file_links.link_for(body["id"])
    fetched = await cloud.client.get(link)
    assert fetched.status_code == 200
    assert fetched.content == GCODE
    assert urlsplit(link).netloc == urlsplit(cloud.url).netloc
    tampered = await cloud.client.get(link[:-4] + "0000")
    assert tampered.status_code == 403
    query = dict(part.split("=") for part in urlsplit(link).query.split("&"))
    backdated = f"/printer-files/{body['id']}?expires=1000&token={query['token']}"
    assert (await cloud.client.get(backdated)).status_code == 403
    forged = link.replace(query["token"], "%C3%A9" * 32)  # non-ASCII: a refusal, not a crash
    assert (await cloud.client.get(forged)).status_code == 403
    missing = await cloud.client.get(cloud.context.service.file_links.link_for("no-such-file"))
    assert missing.status_code == 404
    no_link = await cloud.client.get(f"/printer-files/{body['id']}")
    assert no_link.status_code == 422


@pytest.mark.asyncio
async def test_bad_uploads_get_a_clear_4xx_and_leave_nothing_behind(
    small_cloud: Running,
) -> None:
    cloud = small_cloud
    token = await sign_up(cloud.client, "careless@example.org")
    valid = sliced_3mf()
    cases: list[tuple[str, bytes, int, str, str]] = [
        ("cube.gcode.3mf", valid[: len(valid) // 2], 422, "invalid_file", "truncated"),
        ("cube.gcode.3mf", _with_a_flipped_byte(), 422, "invalid_file", "corrupt"),
        ("model.gcode.3mf", _zip_without_plate(), 422, "invalid_file", "plate_N.gcode"),
        ("junk.gcode", os.urandom(20_000), 422, "invalid_file", "binary"),
        ("latin.gcode", b"\xe9\xe8\xff" * 5_000, 422, "invalid_file", "not"),
        ("notes.gcode", b"just some notes\nno commands here\n", 422, "invalid_file", "no G-code"),
        ("empty.gcode", b"", 422, "invalid_file", "empty"),
        ("cube.stl", b"solid cube\nendsolid cube\n", 415, "unsupported_file_type", ".gcode"),
        # Just over: counted as it arrives. Far over: refused by its Content-Length, unread.
        ("big.gcode", b"G1 X1 Y1\n" * (LIMIT // 9 + 100), 413, "file_too_large", "limit"),
        ("huge.gcode", b"G1 X1 Y1\n" * (LIMIT // 3), 413, "file_too_large", "limit"),
    ]
    for name, data, status, error, hint in cases:
        response = await upload(cloud.client, token, name, data)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"] == error, name
        assert hint in response.json()["message"], (name, response.json()["message"])

    # Streamed without a length, the limit is enforced while receiving.
    chunk = b"G1 X1 Y1\n" * 10_000
    oversized = await post_stream(
        cloud,
        token,
        [multipart_head("big.gcode"), *[chunk] * 4, f"\r\n--{BOUNDARY}--\r\n".encode()],
    )
    assert oversized.status_code == 413
    # A body that ends inside the file: the upload was truncated.
    cut = await post_stream(cloud, token, [multipart_head("cut.gcode"), GCODE])
    assert cut.status_code == 400
    assert cut.json()["error"] == "malformed_upload"
    assert "truncated" in cut.json()["message"]
    not_a_form = await cloud.client.post(
        "/api/v1/files", headers=bearer(token), json={"file": "G1 X1"}
    )
    assert not_a_form.status_code == 400
    wrong_field = await cloud.client.post(
        "/api/v1/files",
        headers=bearer(token),
        files={"attachment": ("cube.gcode", GCODE, "text/plain")},
    )
    assert wrong_field.status_code == 400
    assert "'file'" in wrong_field.json()["message"]

    assert stored_files(cloud) == []
    user = await cloud.context.store.accounts.user_by_email("careless@example.org")
    assert user is not None
    assert await cloud.context.store.files.for_owner(user.id) == []
    assert (await cloud.client.get("/api/v1/files", headers=bearer(token))).json() == []


def _zip_without_plate() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("3D/3dmodel.model", "<model/>")
    return buffer.getvalue()


def _with_a_flipped_byte() -> bytes:
    """A complete archive whose plate's bytes no longer match their checksum."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("Metadata/plate_1.gcode", GCODE)
    data = buffer.getvalue()
    at = data.index(b"G1 X20")
    return data[:at] + b"G1 X21" + data[at + 6 :]


@pytest.mark.asyncio
async def test_the_file_part_survives_any_split_of_the_body() -> None:
    other_field = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    ).encode()
    body = (
        other_field
        + multipart_head("dir\\Würfel.gcode")
        + GCODE
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    for size in (1, 7, 64, len(body)):
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        form = MultipartFile(f"multipart/form-data; boundary={BOUNDARY}", streamed(pieces))
        assert await form.open() == "dir\\Würfel.gcode"
        assert b"".join([chunk async for chunk in form.chunks()]) == GCODE
    assert clean_name("dir\\Würfel.gcode") == "Würfel.gcode"
    assert clean_name("../../etc/passwd\x00.gcode") == "passwd.gcode"


def test_file_kinds_and_content_checks(tmp_path: Path) -> None:
    assert kind_of("Cube.GCODE") is FileKind.GCODE
    assert kind_of("plate.gcode.3mf") is FileKind.GCODE_3MF
    for name in ("model.3mf", ".gcode", "cube.gcode.zip"):
        with pytest.raises(UnsupportedFileType):
            kind_of(name)
    one_long_line = tmp_path / "line.gcode"
    one_long_line.write_bytes(b"G1" + b"x" * 300_000)
    with pytest.raises(InvalidFile, match="line of over"):
        check_file(one_long_line, FileKind.GCODE)
    # A stray Latin-1 degree sign in a comment is tolerated.
    latin = tmp_path / "latin.gcode"
    latin.write_bytes(b"; bed 60\xb0C\n" + GCODE)
    assert check_file(latin, FileKind.GCODE).layers == 3
    thumbnail = tmp_path / "thumb.gcode"
    thumbnail.write_bytes(b"; thumbnail begin 16x16 128\n; iVBORw0KGgo=\n; thumbnail end\n" + GCODE)
    assert check_file(thumbnail, FileKind.GCODE).has_thumbnail
