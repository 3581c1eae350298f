"""``watch PRINTER --json`` prints that printer's events only, as ``watch PRINTER`` shows."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_client_cli import EVENTS, PRINTER, Cli
from tests.client.faulty_server import FaultyServer, Reply

OTHER = (
    b'id: n0\nevent: printer_telemetry\ndata: {"id":"n0","kind":"printer_telemetry",'
    b'"severity":"info","title":"p2: idle","message":"","printer_id":"p2","job_id":null,'
    b'"created_at":"2026-12-04T11:59:59.000+00:00","data":{"status":"idle"}}\n\n'
)


def test_watch_json_of_one_printer_leaves_out_the_others(tmp_path: Path) -> None:
    script = [
        Reply(200, PRINTER, path="/api/v1/printers/p1"),
        Reply(raw=OTHER + EVENTS, path="/api/v1/events"),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        lines = cli("watch", "p1", "--json", "--count", "2").stdout.splitlines()
    shown = [json.loads(line) for line in lines]
    assert [(event["kind"], event["data"]["printer_id"]) for event in shown] == [
        ("printer_state", "p1"),
        ("thermal_fault", "p1"),
    ]


def test_watch_json_of_an_unknown_printer_fails_before_streaming(tmp_path: Path) -> None:
    body = {"error": "not_found", "message": "no printer p9"}
    with FaultyServer([Reply(404, body, path="/api/v1/printers/p9")]) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        assert "not found: no printer p9" in cli("watch", "p9", "--json", code=1).stderr
        assert server.requests_to("/api/v1/events") == []
