"""`printfleet demo` as a person runs it: a subprocess with its embedded broker, cloud and fleet.

The dashboard answers at the printed address, the printed credentials log in, the sample print
completes, Ctrl-C (SIGINT) stops everything without a traceback, and a second run on the same
data directory finds the same account again.
"""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

PRINTFLEET = Path(sys.executable).parent / "printfleet"


@dataclass
class DemoProcess:
    process: subprocess.Popen[str]
    lines: "queue.Queue[str | None]"
    seen: list[str]
    log: Path

    def stop(self, within: float = 60) -> tuple[int, str]:
        """Wait for the end: the exit status and what it logged (stderr)."""
        status = self.process.wait(timeout=within)
        return status, self.log.read_text()

    def read_until(self, pattern: str, within: float = 60) -> re.Match[str]:
        """The first line (read so far or from now on) matching ``pattern``."""
        wanted = re.compile(pattern)
        for earlier in self.seen:
            if found := wanted.search(earlier):
                return found
        deadline = time.monotonic() + within
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {within} s: {self.seen}")
            if line is None:
                pytest.fail(f"the demo ended before printing {pattern!r}: {self.seen}")
            self.seen.append(line)
            if found := wanted.search(line):
                return found


def _pump(stream: IO[str], lines: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


StartDemo = Callable[..., DemoProcess]


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[StartDemo]:
    """Start ``printfleet demo ARGUMENTS`` (on a free port, in this test's data dir)."""
    started: list[tuple[subprocess.Popen[str], threading.Thread]] = []

    def start(*arguments: str) -> DemoProcess:
        log = tmp_path / f"demo-{len(started)}.log"
        # A file, not a pipe, for the log: nobody reads it while the demo runs.
        with log.open("w") as errors:
            process = subprocess.Popen(  # noqa: S603 - our own console script
                    [str(PRINTFLEET), "demo", "--port", "0", "--data-dir",
                     str(tmp_path / "demo"), *arguments],
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                    env={**os.environ, "COLUMNS": "120"},
                )  # fmt: skip
        lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        pump.start()
        started.append((process, pump))
        return DemoProcess(process, lines, [], log)

    yield start
    for process, pump in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        pump.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_the_demo_serves_the_dashboard_completes_its_sample_and_stops_on_ctrl_c(
    start_demo: StartDemo,
) -> None:
    demo = start_demo("--time-scale", "40")
    url = demo.read_until(r"printfleet demo dashboard on (http://127\.0\.0\.1:\d+)/").group(1)
    password = demo.read_until(r"Password\s+(\S+)").group(1)
    token = demo.read_until(r"API token\s+(pf_\S+)").group(1)
    job_id = demo.read_until(r"Sample job\s+(\S+)").group(1)
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert '<script type="module" src="/web/app.js">' in page.text
        assert client.get("/web/app.js").status_code == 200
        login = client.post(
            "/api/v1/login", json={"email": "demo@printfleet.example", "password": password}
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {token}"}
        printers = client.get("/api/v1/printers", headers=auth).json()
        assert sorted(p["model"] for p in printers) == ["p1", "p1", "x1", "x1"]
        # The sample prints on an x1-like printer (its sensor sees a clear plate) and completes:
        # heating and 20 layers, about 400 s of hardware time: 10 s at 40x.
        deadline = time.monotonic() + 60
        states: list[str] = []
        while time.monotonic() < deadline:
            job = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json()
            if not states or states[-1] != job["state"]:
                states.append(job["state"])
            if job["state"] in {"completed", "failed", "rejected", "expired", "cancelled"}:
                break
            time.sleep(0.25)
        assert states[-1] == "completed", (states, job)
        assert "printing" in states

    demo.process.send_signal(signal.SIGINT)
    status, log = demo.stop()
    assert status == 130, log[-3000:]
    assert "Traceback" not in log
    demo.read_until("demo stopped")


def test_a_second_run_finds_the_same_account_and_stops_by_itself(
    start_demo: StartDemo,
) -> None:
    first = start_demo("--duration", "0")
    password = first.read_until(r"Password\s+(\S+)").group(1)
    # By default a person clears the plates, so the demo farm keeps printing.
    first.read_until(r"Attendant\s+clears each plate 30 simulated s")
    status, log = first.stop()
    assert status == 0, log[-3000:]

    second = start_demo("--duration", "0", "--attendant-after", "0")
    assert second.read_until(r"Password\s+(\S+)").group(1) == password
    second.read_until(r"Attendant\s+none: clear plates yourself")
    second.read_until(r"demo stopped")
    status, log = second.stop()
    assert status == 0, log[-3000:]
    assert "Traceback" not in log


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(  # noqa: S603 - our own console script
            [str(PRINTFLEET), "demo", "--port", str(port), "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr
    assert "Traceback" not in result.stderr
