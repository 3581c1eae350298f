"""Every `printfleet ... --help` page reads cleanly: flags bare, every option explained."""

from collections.abc import Iterator
from pathlib import Path

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


def _readme_cli_lines() -> list[list[str]]:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the CLI", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [
        line.split("#", 1)[0].split()
        for line in block.splitlines()
        if line.startswith("printfleet ")
    ]


def test_the_readme_cli_section_uses_only_commands_and_options_that_exist() -> None:
    lines = _readme_cli_lines()
    assert len(lines) > 15
    for words in lines:
        command: object = ROOT
        rest = words[1:]
        while isinstance(command, TyperGroup) and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        known = {
            opt
            for param in getattr(command, "params", [])
            if isinstance(param, TyperOption)
            for opt in (*param.opts, *param.secondary_opts)
        }
        used = {word for word in rest if word.startswith("-")}
        assert used <= known, f"{' '.join(words)}: {sorted(used - known)} unknown"
        unknown_subcommand = isinstance(command, TyperGroup) and rest and rest[0][0] != "-"
        assert not unknown_subcommand, " ".join(words)
