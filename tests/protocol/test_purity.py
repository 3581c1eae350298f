"""The protocol core stays sans-IO: no event loop, sockets, MQTT, HTTP, files or clocks."""

import ast
import subprocess
import sys
from pathlib import Path

import printfleet.protocol

PROTOCOL_DIR = Path(printfleet.protocol.__file__).parent
FORBIDDEN_IMPORTS = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "threading", "sqlite3", "time", "datetime",
        "os", "pathlib", "io", "paho", "aiomqtt", "httpx", "anyio", "printfleet.agent",
        "printfleet.cloud", "printfleet.client", "printfleet.sim", "printfleet.chaos",
    }
)  # fmt: skip
LOADED_AT_RUN_TIME = ("asyncio", "paho", "aiomqtt", "httpx", "anyio", "sqlite3")


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
    return found


def forbidden_in(modules: set[str]) -> set[str]:
    return {
        name
        for name in modules
        if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN_IMPORTS)
    }


def test_no_protocol_module_imports_io_or_clocks() -> None:
    offenders = {
        path.name: sorted(forbidden_in(imported_modules(path.read_text())))
        for path in sorted(PROTOCOL_DIR.glob("*.py"))
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}
    assert len(offenders) >= 10  # the scan really read the package


def test_the_scan_would_notice_an_io_import() -> None:
    assert forbidden_in(imported_modules("import asyncio\nfrom paho.mqtt import client")) == {
        "asyncio",
        "paho.mqtt",
    }


def test_importing_the_protocol_loads_no_io_library() -> None:
    probe = (
        "import sys\n"
        "import printfleet.protocol.printer, printfleet.protocol.dispatch\n"
        "import printfleet.protocol.issuer, printfleet.protocol.walkthrough\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LOADED_AT_RUN_TIME!r}))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter on a fixed script
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
