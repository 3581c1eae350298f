"""Two thousand seeded fault schedules over the deterministic fleet, as CI's standing proof.

Shorter schedules (10 steps before the settle) than ``printfleet chaos sim``'s default, so the
two thousand fit in CI; the long hunt is ``printfleet chaos sim --seeds 20000``.
"""

import pytest

from printfleet.chaos.schedules import run_schedules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_two_thousand_schedules_break_no_promise() -> None:
    results = run_schedules(range(100_000, 102_000), steps=10, workers=2)
    assert len(results) == 2_000
    failing = [(r.seed, [v.kind.value for v in r.violations]) for r in results if not r.ok]
    assert failing == []
    assert sum(r.faults_injected for r in results) > 2_000
    assert sum(r.starts for r in results) > 1_000
