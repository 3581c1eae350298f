"""Every `printfleet ... --help` page reads cleanly: flags bare, every option explained."""

from collections.abc import Iterator

import pytest
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from printfleet.cli.main import app
from printfleet.client.lan import DEFAULT_LAN_PORT

ROOT = get_command(app)


def _walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(ROOT, ()))


def test_the_walk_reaches_nested_commands() -> None:
    paths = {path for path, _ in COMMANDS}
    assert ("jobs",) in paths
    assert ("alerts", "ack") in paths
    assert len(paths) > 20


@pytest.mark.parametrize(
    ("path", "command"),
    COMMANDS,
    ids=lambda v: " ".join(v) or "printfleet" if isinstance(v, tuple) else "",
)
def test_help_page(path: tuple[str, ...], command: object) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"}, terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for line in result.output.splitlines():
        assert not line.rstrip(" │").endswith(" ."), line
    params = getattr(command, "params", [])
    for param in params:
        if isinstance(param, TyperOption) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"
        if isinstance(param, TyperArgument) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.name} has no help text"


@pytest.mark.parametrize("command", ["print", "status"])
def test_lan_help_names_the_default_port(command: str) -> None:
    result = CliRunner().invoke(
        app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200
    )
    assert f"port {DEFAULT_LAN_PORT} if none" in result.output
