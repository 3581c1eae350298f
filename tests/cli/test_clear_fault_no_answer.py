"""``clear-fault`` with nobody to answer its question sends nothing and says how to answer."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_client_cli import Cli
from tests.client.faulty_server import FaultyServer, Reply


def test_no_answer_sends_nothing_and_names_yes(tmp_path: Path) -> None:
    script = [Reply(202, {"printer_id": "x1", "action": "clear_fault"}, path="/api/v1/printers/x1")]
    with FaultyServer(script) as server:
        cli = Cli(tmp_path, PRINTFLEET_URL=server.url, PRINTFLEET_TOKEN="pf_x")
        unanswered = cli("clear-fault", "x1", code=2, stdin="")
        assert "Aborted" not in unanswered.output
        assert "printfleet clear-fault x1 --yes once someone has checked" in unanswered.stderr
        assert server.requests_to("/api/v1/printers/x1/clear-fault") == []
