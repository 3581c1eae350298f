"""The invariant checker: reads a history and names every violation of S1 to S7 with evidence.

It judges from physical truth recorded at each start (was the plate really occupied? had the
deadline really passed in true time?), never from what the code under test believed.
"""

from dataclasses import dataclass
from enum import StrEnum

from printfleet.chaos.simulation import History
from printfleet.protocol.lifecycle import JobState


class ViolationKind(StrEnum):
    """Each kind of broken promise, with the invariant it breaks."""

    UNINTENDED_START = "S1 unintended start"
    STALE_START = "S2 stale start"
    LONG_DEADLINE = "S2 deadline beyond the dispatch window"
    DUPLICATE_START = "S3 duplicate start"
    BUSY_START = "S4 start on a busy or faulted printer"
    OCCUPIED_PLATE = "S5 start on an occupied plate"
    UNCONFIRMED_PLATE = "S5 start on an unconfirmed plate"
    HEAT_WHILE_FAULTED = "S6 heating with a latched fault"
    NO_TERMINAL_STATE = "S7 job without a terminal state"
    NOT_NOTIFIED = "S7 failure nobody was told of"
    UNVERIFIED_DISPATCH = "S8 command issued without link evidence"
    DELIVERED_AFTER_FAILED_PUBLISH = "S9 command delivered after its publish failed"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise and the facts that show it."""

    kind: ViolationKind
    evidence: str


def check(
    history: History, *, dispatch_window_ms: int = 30_000, require_terminal: bool = False
) -> list[Violation]:
    """Every violation in ``history``. ``require_terminal`` once the run has settled."""
    violations: list[Violation] = []
    started: dict[str, str] = {}
    for start in history.starts:
        where = f"{start.printer_id} at t={start.at} ms, job {start.job_id}"
        if start.job_id not in history.intents:
            violations.append(Violation(ViolationKind.UNINTENDED_START, where))
        if start.not_after is not None and start.at > start.not_after:
            late = start.at - start.not_after
            violations.append(Violation(ViolationKind.STALE_START, f"{where}: {late} ms late"))
        if start.issued_at is not None and start.not_after is not None:
            lifetime = start.not_after - start.issued_at
            if lifetime > dispatch_window_ms:
                violations.append(
                    Violation(ViolationKind.LONG_DEADLINE, f"{where}: valid {lifetime} ms")
                )
        if start.job_id in started:
            first = started[start.job_id]
            violations.append(
                Violation(ViolationKind.DUPLICATE_START, f"{where}; first on {first}")
            )
        started.setdefault(start.job_id, start.printer_id)
        if start.printer_busy or start.fault_latched:
            violations.append(Violation(ViolationKind.BUSY_START, where))
        if start.plate_occupied and start.plate_check:
            violations.append(Violation(ViolationKind.OCCUPIED_PLATE, where))
        if start.link_verified_at_issue is False:
            violations.append(Violation(ViolationKind.UNVERIFIED_DISPATCH, where))
    violations.extend(
        Violation(ViolationKind.HEAT_WHILE_FAULTED, f"{printer_id} at t={at} ms")
        for at, printer_id in history.heated_while_faulted
    )
    for job_id in history.intents:
        state = history.terminal.get(job_id)
        if state is None:
            if require_terminal:
                violations.append(Violation(ViolationKind.NO_TERMINAL_STATE, f"job {job_id}"))
            continue
        if state is not JobState.COMPLETED and job_id not in history.notified:
            violations.append(
                Violation(ViolationKind.NOT_NOTIFIED, f"job {job_id} ended {state.value}")
            )
    return violations
