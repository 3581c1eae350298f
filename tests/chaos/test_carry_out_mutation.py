"""The deterministic simulation proves the real carry-out: break its ordering, and it notices.

The dispatcher records a stage, start or journal query before publishing it, because a printer
on a fast path answers before the publish returns and only an answer to the command the job
records moves the job (``tests/chaos/test_fast_answer_races.py`` pins each case). The simulation
used to carry decisions out with a copy of that code, which recorded after publishing, so no
number of seeds could find the race. It now drives the production dispatcher; this test swaps
the two steps in the one carry-out and watches the same seeded schedules catch it: a job whose
journal answers are all heard too early is never settled (S7).
"""

import pytest

from printfleet.chaos.checker import ViolationKind
from printfleet.chaos.schedules import ScheduleResult, run_schedules
from printfleet.cloud.dispatch.dispatcher import Dispatcher, StoredJob
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.messages import CommandBase

SEEDS = range(40)
"""The first forty seeds, at ten steps each: a few seconds."""


async def publish_then_record(
    self: Dispatcher, recorded: JobView, job: StoredJob, command: CommandBase, action: str
) -> tuple[int, PublishOutcome]:
    """The copy's old order: publish first, record afterwards."""
    outcome = await self._send(command.printer_id, command, job, action)
    version = await self._save(recorded, job)
    return version, outcome


@pytest.fixture
def recording_after_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dispatcher, "_record_then_publish", publish_then_record)


def _failing(results: list[ScheduleResult]) -> dict[int, set[ViolationKind]]:
    return {r.seed: {v.kind for v in r.violations} for r in results if not r.ok}


def test_the_real_carry_out_breaks_no_promise_in_these_schedules() -> None:
    results = run_schedules(SEEDS, steps=10)
    assert _failing(results) == {}
    assert sum(r.starts for r in results) > len(SEEDS)  # they print


@pytest.mark.usefixtures("recording_after_publishing")
def test_recording_after_publishing_is_caught_by_the_same_schedules() -> None:
    failing = _failing(run_schedules(SEEDS, steps=10))
    assert failing, "the simulation no longer notices a carry-out that records too late"
    assert all(kinds == {ViolationKind.NO_TERMINAL_STATE} for kinds in failing.values()), failing
