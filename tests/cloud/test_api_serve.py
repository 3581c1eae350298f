"""``printfleet serve``: the console script runs the cloud, answers on the port it reports,
and shuts down cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from printfleet.testing import MosquittoBroker

PRINTFLEET = Path(sys.executable).parent / "printfleet"


def test_serve_runs_the_cloud_until_interrupted(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PRINTFLEET_")}
    server = subprocess.Popen(  # noqa: S603 - our own console script
        [
            str(PRINTFLEET), "serve", "--port", "0", "--data-dir", str(tmp_path / "cloud"),
            "--broker-url", mosquitto.url,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert found, banner
        url = found.group(0)
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"{url}/health", timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status != 200:
                time.sleep(0.1)  # a separate process: nothing to await but its answer
        assert status == 200, "the server did not become healthy"
        assert (tmp_path / "cloud" / "cloud-signing.key").is_file()
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=30)
        assert server.returncode == 0, errors
        assert "Application shutdown complete" in errors
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
