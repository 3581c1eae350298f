"""The client commands against a real cloud (and, for failures, a real server that fails on
purpose): login and profiles, printers, upload, print, jobs, cancel, alerts, watch, status,
--json output, and the one-line errors with their exit codes."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from tests.client.faulty_server import FaultyServer, Reply
from tests.client.live_cloud import GCODE, PASSWORD, LiveCloud, close_people, live_cloud
from typer.testing import CliRunner, Result

from printfleet.cli import app
from printfleet.cli.failures import EXIT_CODES

__all__ = ["close_people", "live_cloud"]  # fixtures, imported for pytest

runner = CliRunner()


class Cli:
    """Runs ``printfleet`` with its own config directory and environment."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = {
            "XDG_CONFIG_HOME": str(home),
            "PRINTFLEET_URL": "",
            "PRINTFLEET_TOKEN": "",
            "PRINTFLEET_PROFILE": "",
            "PRINTFLEET_PASSWORD": "",
            "COLUMNS": "200",
            **env,
        }

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        # Empty variables count as unset for printfleet; click ignores them for envvar options.
        env = {k: v for k, v in self.env.items() if v} | {
            k: None for k, v in self.env.items() if not v
        }
        result = runner.invoke(app, list(args), env=env, input=stdin)
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    @property
    def config(self) -> Path:
        return self.home / "printfleet" / "client.toml"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config")


@pytest.fixture
def gcode(tmp_path: Path) -> Path:
    path = tmp_path / "cube.gcode"
    path.write_bytes(GCODE)
    return path


def test_login_saves_a_private_profile_and_commands_use_it(live_cloud: LiveCloud, cli: Cli) -> None:
    ada = live_cloud.person("ada")
    result = cli("login", live_cloud.url, "--email", ada.email, stdin=f"{PASSWORD}\n")
    assert "saved as profile 'default'" in result.stdout
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    saved = tomllib.loads(cli.config.read_text())
    assert saved["default"] == "default"
    assert saved["profiles"]["default"]["url"] == live_cloud.url
    assert saved["profiles"]["default"]["token"].startswith("pf_")
    assert PASSWORD not in cli.config.read_text()

    printer_id = ada.printer()
    listed = cli.json("printers")
    assert [p["id"] for p in listed] == [printer_id]
    table = cli("printers").stdout
    assert printer_id in table
    assert "offline" in table
    assert "link evidence" in table

    # A second profile by token; the last one saved becomes the default.
    bob = live_cloud.person("bob")
    cli("login", live_cloud.url, "--token", bob.token, "--profile", "bob")
    assert cli.json("printers") == []
    assert [p["id"] for p in cli.json("printers", "--profile", "default")] == [printer_id]
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600


def test_login_failures_say_what_to_do(live_cloud: LiveCloud, cli: Cli) -> None:
    ada = live_cloud.person("ada")
    wrong = cli("login", live_cloud.url, "--email", ada.email, "--password", "nope", code=3)
    assert "wrong e-mail address or password" in wrong.stderr
    assert not cli.config.exists()
    forged = cli("login", live_cloud.url, "--token", "pf_" + "x" * 43, code=3)
    assert "log in again" in forged.stderr
    assert "printfleet login" in cli("printers", code=3).stderr
    assert "no profile 'work'" in cli("printers", "--profile", "work", code=3).stderr
    both = cli("login", live_cloud.url, "--email", ada.email, "--token", ada.token, code=2)
    assert "either --email" in both.stderr
    assert "https://host" in cli("login", "localhost:1", "--token", "t", code=2).stderr


def test_environment_variables_need_no_config(live_cloud: LiveCloud, tmp_path: Path) -> None:
    ada = live_cloud.person("ada")
    env_cli = Cli(tmp_path / "none", PRINTFLEET_URL=live_cloud.url, PRINTFLEET_TOKEN=ada.token)
    assert env_cli.json("printers") == []
    assert env_cli.json("status")["status"] == "ok"
    assert not env_cli.config.exists()


def test_upload_print_jobs_and_cancel(live_cloud: LiveCloud, cli: Cli, gcode: Path) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)

    uploaded = cli.json("upload", str(gcode))
    assert uploaded["name"] == "cube.gcode"
    assert uploaded["size"] == len(GCODE)
    assert "uploaded cube.gcode" in cli("upload", str(gcode)).stdout

    # From a path (uploaded on the way) to a printer, and from a file id to a model.
    job = cli.json("print", str(gcode), "--printer", printer_id, "--start-within", "10m")
    assert job["state"] == "queued"
    assert job["printer_id"] == printer_id
    assert job["start_by"] - job["created_at"] == 600_000
    assert job["idempotency_key"].startswith("sdk-")
    by_model = cli("print", uploaded["id"], "--model", "p1")
    assert "queued for a p1" in by_model.stdout

    jobs = cli.json("jobs")
    assert len(jobs) == 2
    assert jobs[1]["id"] == job["id"]
    assert [j["id"] for j in cli.json("jobs", "--printer", printer_id)] == [job["id"]]
    detail = cli("jobs", job["id"]).stdout
    assert "job.created" in detail
    # The table shows whole ids (folded to fit 80 columns), and a unique start of one will do.
    table = cli("jobs").stdout.replace("\n", "").replace("│", "").replace(" ", "")
    assert job["id"] in table
    assert jobs[0]["id"] in table
    shared = next(n for n in range(4, 37) if job["id"][:n] != jobs[0]["id"][:n])
    assert "give more characters" in cli("jobs", job["id"][: shared - 1], code=2).stderr
    assert "job.created" in cli("jobs", job["id"][:shared]).stdout
    assert "at least 4 characters" in cli("jobs", "01", code=2).stderr
    assert "not found" in cli("jobs", "ffffffff", code=1).stderr

    cancelled = cli.json("cancel", job["id"][:shared])
    assert cancelled["state"] == "cancelled"
    assert [j["id"] for j in cli.json("jobs", "--state", "cancelled")] == [job["id"]]
    assert "cancelled" in cli("jobs").stdout


def test_print_refuses_bad_input_before_calling(
    live_cloud: LiveCloud, cli: Cli, gcode: Path
) -> None:
    ada = live_cloud.person("ada")
    cli("login", live_cloud.url, "--token", ada.token)
    assert "--printer ID, --model MODEL or --pool NAME" in cli("print", str(gcode), code=2).stderr
    both = cli("print", str(gcode), "--printer", "a", "--model", "b", code=2)
    assert "--printer ID, --model MODEL or --pool NAME" in both.stderr
    assert (
        "positive duration"
        in cli("print", str(gcode), "--model", "p1", "--start-within", "soon", code=2).stderr
    )
    no_unit = cli("print", str(gcode), "--model", "p1", "--start-within", "5", code=2)
    assert "has no unit: say 5s, 5m or 5h" in no_unit.stderr
    missing = cli("print", "nowhere/cube.gcode", "--model", "p1", code=2)
    assert "no such file: nowhere/cube.gcode" in missing.stderr
    unknown = cli("print", "no-such-file-id", "--model", "p1", code=1)
    assert unknown.stderr.startswith("error: not found")
    assert cli.json("jobs") == []


def test_alerts_list_and_ack(live_cloud: LiveCloud, cli: Cli) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    alert_id = live_cloud.raise_alert(printer_id)
    cli("login", live_cloud.url, "--token", ada.token)
    listed = cli.json("alerts")
    assert [(a["id"], a["kind"]) for a in listed] == [(alert_id, "thermal_fault")]
    table = cli("alerts").stdout
    assert "hotend sensor open" in table
    # The table shows the whole id (folded to fit 80 columns), and a unique start of it will do.
    assert alert_id in table.replace("\n", "").replace("│", "").replace(" ", "")
    assert "at least 4 characters" in cli("alerts", "ack", alert_id[:3], code=2).stderr
    acked = cli.json("alerts", "ack", alert_id[:8])
    assert acked["id"] == alert_id
    assert acked["acked_at"] is not None
    assert cli.json("alerts") == []
    assert [a["id"] for a in cli.json("alerts", "--all")] == [alert_id]
    assert "not found" in cli("alerts", "ack", "no-such-alert", code=1).stderr
    assert "told" not in cli("confirm-plate", "no-such-printer", code=1).stdout


def test_alerts_show_a_resolved_alert_with_how_long_it_lasted(
    live_cloud: LiveCloud, cli: Cli
) -> None:
    ada = live_cloud.person("ada")
    printer_id = ada.printer()
    alert_id = live_cloud.raise_alert(printer_id, kind="printer_offline")
    live_cloud.run(
        live_cloud.context.store.alerts.resolve(
            printer_id, kind="printer_offline", resolution=f"{printer_id} is back online"
        )
    )
    cli("login", live_cloud.url, "--token", ada.token)
    assert cli.json("alerts") == []
    assert cli("alerts").stdout.strip() == "no alerts"
    (listed,) = cli.json("alerts", "--all")
    assert listed["id"] == alert_id
    assert listed["resolution"] == f"{printer_id} is back online"
    assert listed["duration_s"] == (listed["resolved_at"] - listed["created_at"]) / 1000
    assert f"s: {printer_id} is back online" in cli("alerts", "--all").stdout


def test_unreachable_server(tmp_path: Path) -> None:
    with FaultyServer() as server:
        url = server.url
    cli = Cli(tmp_path, PRINTFLEET_URL=url, PRINTFLEET_TOKEN="pf_x")
    result = cli("jobs", code=4)
    assert result.stderr.startswith(f"error: cannot reach the printfleet server at {url}")
    assert "is the server running" in result.stderr


@pytest.mark.parametrize(
    ("status", "phrase"), [(503, "the server is busy"), (429, "too many requests")]
)
def test_busy_server_says_how_long_to_wait(tmp_path: Path, status: int, phrase: str) -> None:
    body = {"error": "overloaded", "message": "over capacity"}
    # Longer than the CLI waits by itself: it says so at once instead of hanging.
    with FaultyServer(default=Reply(status, body, {"Retry-After": "30"})) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        result = cli("printers", code=5)
    assert result.stderr.strip() == f"error: {phrase}: over capacity; try again in 30 s"
    assert len(server.received) == 1


def test_server_failure_exit_code(tmp_path: Path) -> None:
    body = {"error": "internal_error", "message": "something went wrong on the server"}
    with FaultyServer(default=Reply(500, body)) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        result = cli("alerts", code=6)
    assert "the server failed: something went wrong" in result.stderr


EVENTS = (
    b"retry: 3000\n: subscribed\n\n"
    b'id: n1\nevent: printer_state\ndata: {"id":"n1","kind":"printer_state","severity":"info",'
    b'"title":"P1 is printing","message":"","printer_id":"p1","job_id":null,'
    b'"created_at":"2026-12-04T12:00:00.000+00:00",'
    b'"data":{"online":true,"status":"printing","plate":"occupied","fault":null,"job_id":"j1"}}\n\n'
    b'id: n2\nevent: thermal_fault\ndata: {"id":"n2","kind":"thermal_fault","severity":"critical",'
    b'"title":"Hotend fault on P1","message":"sensor open","printer_id":"p1","job_id":null,'
    b'"created_at":"2026-12-04T12:00:01.000+00:00","data":{"alert_id":"a1"}}\n\n'
)
PRINTER = {
    "id": "p1",
    "name": "P1",
    "model": "p1",
    "role": "owner",
    "plate_check": True,
    "created_at": 1,
    "online": True,
    "status": "idle",
    "plate": "clear",
    "fault": None,
    "clock_synced": True,
    "job_id": None,
    "reported_at": 1,
    "report_age_s": 1.0,
    "temperatures": {
        "hotend": {"current_c": 25.0, "target_c": 0.0},
        "bed": {"current_c": 24.0, "target_c": 0.0},
    },
    "progress": None,
    "link_evidence_age_s": 0.5,
}


def test_watch_streams_events_as_json_lines(tmp_path: Path) -> None:
    with FaultyServer([Reply(raw=EVENTS, path="/api/v1/events")]) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        lines = cli("watch", "--json", "--count", "2").stdout.splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds == ["printer_state", "thermal_fault"]
    assert server.requests_to("/api/v1/events")[0].headers["accept"] == "text/event-stream"


def test_watch_shows_the_fleet_live_with_alerts(tmp_path: Path) -> None:
    script = [
        Reply(200, PRINTER, path="/api/v1/printers/p1"),
        Reply(200, [PRINTER], path="/api/v1/printers"),
        Reply(raw=EVENTS, path="/api/v1/events"),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        shown = cli("watch", "p1", "--count", "2").stdout
    assert "printer p1 (live" in shown
    assert "printing" in shown  # the state event updated the row
    assert "occupied" in shown
    assert "thermal_fault p1: Hotend fault on P1" in shown


def test_watch_of_an_unknown_printer_fails_clearly(tmp_path: Path) -> None:
    body = {"error": "not_found", "message": "no printer p9"}
    with FaultyServer([Reply(404, body, path="/api/v1/printers/p9")]) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        assert "not found: no printer p9" in cli("watch", "p9", code=1).stderr


LAN_STATUS = {
    "printer_id": "p1-lan",
    "model": "p1",
    "mode": "lan-only",
    "status": "idle",
    "plate": "clear",
    "broker_connected": False,
    "hotend_c": 24.5,
    "bed_c": 23.0,
}


def test_lan_print_and_status_pass_through(tmp_path: Path, gcode: Path) -> None:
    script = [
        Reply(200, {"name": "cube.gcode", "size": len(GCODE)}, path="/lan/v1/files/"),
        Reply(200, {}, path="/lan/v1/confirm-plate"),
        Reply(
            200,
            {"job_id": "lan-1", "file": "cube.gcode", "started_by": "lan"},
            path="/lan/v1/print",
        ),
        Reply(200, LAN_STATUS, path="/lan/v1/status"),
        Reply(200, {"name": "cube.gcode", "size": len(GCODE)}, path="/lan/v1/files/"),
        Reply(409, {"detail": "busy printing", "reason": "BUSY"}, path="/lan/v1/print"),
        Reply(200, {"unexpected": True}, path="/lan/v1/status"),
        Reply(401, {"detail": "wrong access code"}, path="/lan/v1/status"),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path)  # no cloud login needed for --lan
        lan = ["--lan", server.url, "--access-code", "1234"]
        started = cli("print", str(gcode), *lan, "--confirm-plate")
        assert "job lan-1" in started.stdout
        assert server.requests_to("/lan/v1/files/")[0].headers["x-access-code"] == "1234"
        assert server.requests_to("/lan/v1/confirm-plate")
        assert cli.json("status", *lan)["printer_id"] == "p1-lan"
        refused = cli("print", str(gcode), *lan, code=1)
        assert "the printer refused: BUSY" in refused.stderr
        assert "unexpected answer from the printer" in cli("status", *lan, code=6).stderr
        assert "access code" in cli("status", *lan, code=3).stderr
    assert "--access-code" in cli("status", "--lan", "host", code=2).stderr
    assert (
        "cannot reach the printer"
        in cli("status", "--lan", server.url, "--access-code", "1", code=4).stderr
    )


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for line in ("3  not logged in", "4  the server (or printer) cannot be reached", "130"):
        assert line in result.stdout


def test_the_readme_documents_the_same_exit_codes() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme


def test_watch_refetches_the_fleet_when_told_to_resync(tmp_path: Path) -> None:
    busy = {**PRINTER, "status": "printing", "job_id": "j7"}
    script = [
        Reply(200, [PRINTER], path="/api/v1/printers"),
        Reply(200, [busy], path="/api/v1/printers"),
        Reply(raw=b'event: resync\ndata: {"reason": "last_event_id_unknown"}\n\n'),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        shown = cli("watch", "--count", "1").stdout
    assert len(server.requests_to("/api/v1/printers")) == 2
    assert "resync: refetched the printers" in shown
    assert "printing" in shown


def test_confirm_plate_and_an_unhealthy_status(tmp_path: Path) -> None:
    unhealthy = {
        "status": "unavailable",
        "store": {"ok": True},
        "link": {
            "connected": False,
            "verified": False,
            "evidence_age_s": 42.0,
            "last_rtt_s": None,
            "connects": 3,
        },
    }
    script = [
        Reply(202, {"printer_id": "p1", "action": "confirm_plate"}, path="/api/v1/printers/p1"),
        Reply(503, unhealthy, path="/health"),
        Reply(503, unhealthy, path="/health"),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        assert "told p1 its plate is clear" in cli("confirm-plate", "p1").stdout
        shown = cli("status", code=5).stdout
        assert "unavailable" in shown
        assert "not verified, evidence 42.0 s" in shown
        assert cli("status", "--json", code=5).stdout.count('"verified": false') == 1
    assert server.requests_to("/api/v1/printers/p1/confirm-plate")[0].method == "POST"


def test_share_list_and_remove(live_cloud: LiveCloud, cli: Cli) -> None:
    ada, bo = live_cloud.person("ada"), live_cloud.person("bo")
    printer_id = ada.printer()
    cli("login", live_cloud.url, "--token", ada.token)
    assert "not shared with anyone" in cli("share", printer_id).stdout
    granted = cli.json("share", printer_id, bo.email)
    assert (granted["email"], granted["role"]) == (bo.email, "operator")
    assert "viewer" in cli("share", printer_id, bo.email, "--role", "viewer").stdout
    assert [(s["email"], s["role"]) for s in cli.json("share", printer_id)] == [
        (bo.email, "viewer")
    ]
    assert "may no longer use" in cli("share", printer_id, bo.email, "--remove").stdout
    assert cli.json("share", printer_id) == []
    assert "not found" in cli("share", printer_id, bo.email, "--remove", code=1).stderr
    assert "--role must be" in cli("share", printer_id, bo.email, "--role", "boss", code=2).stderr
    # An address without an account is answered as if shared; the list tells the truth.
    nobody = " ".join(cli("share", printer_id, "nobody@example.org").stdout.split())
    assert "if that address has an account" in nobody
    assert cli.json("share", printer_id) == []


def test_clearing_a_fault_asks_first_and_sends_only_when_told(tmp_path: Path) -> None:
    script = [
        Reply(202, {"printer_id": "x1", "action": "clear_fault"}, path="/api/v1/printers/x1"),
        Reply(202, {"printer_id": "x1", "action": "clear_fault"}, path="/api/v1/printers/x1"),
    ]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        refused = cli("clear-fault", "x1", code=2, stdin="n\n")
        assert "Has someone checked the heaters" in refused.stdout
        assert "nothing sent: the fault stays latched" in refused.output
        assert server.requests_to("/api/v1/printers/x1/clear-fault") == []
        assert "told x1 to clear its fault" in cli("clear-fault", "x1", stdin="y\n").stdout
        assert "told x1 to clear its fault" in cli("clear-fault", "x1", "--yes").stdout
    sent = server.requests_to("/api/v1/printers/x1/clear-fault")
    assert [r.method for r in sent] == ["POST", "POST"]
