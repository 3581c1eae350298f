"""The simulated SD card (names, atomic writes, streaming) and screen (messages, prompts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.agent.hardware import (
    FileNameError,
    MessageLevel,
    Prompt,
    StoredFile,
    validate_file_name,
)
from printfleet.sim.clock import SimClock
from printfleet.sim.screen import SimScreen
from printfleet.sim.storage import SimStorage


@pytest.mark.parametrize(
    "name",
    [
        "../escape.gcode",
        "..",
        ".",
        "a/../../b.gcode",
        "dir/file.gcode",
        "/etc/passwd",
        "C:\\boot.ini",
        "..\\up.gcode",
        ".hidden",
        "-rf",
        "",
        "trailing.",
        "trailing ",
        "nul\x00byte",
        "new\nline",
        "x" * 129,
    ],
)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(FileNameError):
        validate_file_name(name)


@pytest.mark.parametrize("name", ["benchy.gcode", "Benchy (2) v1.5.gcode", "a", "x" * 128])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert validate_file_name(name) == name


@given(st.text(max_size=200))
def test_an_accepted_name_is_always_a_single_flat_path_component(name: str) -> None:
    try:
        validate_file_name(name)
    except FileNameError:
        return
    assert Path(name).name == name
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in name
    assert not name.startswith(".")


@pytest.mark.asyncio
async def test_storage_round_trip(tmp_path: Path) -> None:
    storage = SimStorage(tmp_path / "sd")
    assert await storage.list_files() == []
    assert await storage.write("b.gcode", b"G28\n") == StoredFile("b.gcode", 4)
    await storage.write("a.gcode", b"G1 X1\n")
    await storage.write("b.gcode", b"G28\nM84\n")  # replaced
    assert await storage.list_files() == [StoredFile("a.gcode", 6), StoredFile("b.gcode", 8)]
    assert await storage.read("b.gcode") == b"G28\nM84\n"
    await storage.delete("a.gcode")
    assert [f.name for f in await storage.list_files()] == ["b.gcode"]
    with pytest.raises(FileNotFoundError):
        await storage.delete("a.gcode")
    with pytest.raises(FileNotFoundError):
        await storage.read("a.gcode")


@pytest.mark.asyncio
async def test_storage_refuses_traversal_on_every_operation(tmp_path: Path) -> None:
    storage = SimStorage(tmp_path / "sd")
    (tmp_path / "secret").write_bytes(b"do not touch")
    with pytest.raises(FileNameError):
        await storage.write("../secret", b"overwritten")
    with pytest.raises(FileNameError):
        await storage.read("../secret")
    with pytest.raises(FileNameError):
        await storage.delete("../secret")
    with pytest.raises(FileNameError):
        _ = [chunk async for chunk in storage.read_chunks("../secret")]
    assert (tmp_path / "secret").read_bytes() == b"do not touch"


@pytest.mark.asyncio
async def test_streamed_write_and_chunked_read(tmp_path: Path) -> None:
    storage = SimStorage(tmp_path / "sd")
    parts = [bytes([n]) * 1000 for n in range(10)]

    async def upload() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    stored = await storage.write("big.gcode", upload())
    assert stored == StoredFile("big.gcode", 10_000)
    chunks = [chunk async for chunk in storage.read_chunks("big.gcode", chunk_size=4096)]
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert b"".join(chunks) == b"".join(parts)


@pytest.mark.asyncio
async def test_a_failed_upload_leaves_no_file_behind(tmp_path: Path) -> None:
    storage = SimStorage(tmp_path / "sd")
    await storage.write("keep.gcode", b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionError("link dropped")

    with pytest.raises(ConnectionError):
        await storage.write("keep.gcode", broken())
    assert await storage.read("keep.gcode") == b"old"
    assert sorted(p.name for p in (tmp_path / "sd").iterdir()) == ["keep.gcode"]


@pytest.mark.asyncio
async def test_screen_records_messages() -> None:
    screen = SimScreen(SimClock(10.0))
    assert not screen.messages
    await screen.show_message("Printing", MessageLevel.INFO)
    await screen.show_message("Thermal runaway", MessageLevel.ERROR)
    assert screen.current_message is not None
    assert screen.current_message.text == "Thermal runaway"
    assert [m.level for m in screen.messages] == [MessageLevel.INFO, MessageLevel.ERROR]


@pytest.mark.asyncio
async def test_a_person_answers_a_prompt_and_the_agent_receives_it() -> None:
    clock = SimClock(10.0)
    screen = SimScreen(clock)
    await screen.show_prompt(Prompt("plate-1", "Is the plate clear?", ("Clear", "Not clear")))
    waiting = asyncio.create_task(screen.next_answer())
    await asyncio.sleep(0)  # let the agent start waiting before the person taps
    assert not waiting.done()
    given_answer = screen.answer("plate-1", "Clear")
    received = await waiting
    assert received == given_answer
    assert (received.prompt_id, received.option) == ("plate-1", "Clear")
    assert received.answered_at <= clock.now()
    assert screen.open_prompts == {}
    with pytest.raises(KeyError):
        screen.answer("plate-1", "Clear")  # already answered


@pytest.mark.asyncio
async def test_prompts_accept_only_their_own_options_while_open() -> None:
    screen = SimScreen(SimClock())
    await screen.show_prompt(Prompt("p", "Start?", ("Yes", "No")))
    with pytest.raises(ValueError, match="offers"):
        screen.answer("p", "Maybe")
    await screen.withdraw_prompt("p")
    with pytest.raises(KeyError):
        screen.answer("p", "Yes")
    with pytest.raises(KeyError):
        screen.answer("never-shown", "Yes")


def test_a_prompt_needs_distinct_options() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Prompt("p", "?", ())
    with pytest.raises(ValueError, match="distinct"):
        Prompt("p", "?", ("a", "a"))
