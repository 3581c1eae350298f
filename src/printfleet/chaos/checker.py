"""The invariant checker: reads a history and names every violation of S1 to S9 with evidence.

It judges from physical truth recorded at each start (was the plate really occupied? had the
deadline really passed in true time?) and from the store's truth recorded at each command's
issue (could the job's submitter operate that printer then? did its owner want the plate
checked?), never from what the code under test believed. S10 (identities) is a property of how
names are made, not of a history: ``tests/protocol/test_identities.py`` and
``tests/cloud/test_broker_auth.py`` check it.
"""

from dataclasses import dataclass
from enum import StrEnum

from printfleet.chaos.sim_history import History
from printfleet.protocol.lifecycle import JobState


class ViolationKind(StrEnum):
    """Each kind of broken promise; its value starts with the invariant it breaks (S1-S9), or
    with the farm queue rule (Q1 priority, Q2 heat-up cap): promises to a farm, not safety."""

    UNINTENDED_START = "S1 start nobody asked for"
    FOREIGN_START = "S1 start on a printer its submitter may not operate"
    FOREIGN_FILE = "S1 file sent to a printer its submitter may not operate"
    UNFIT_START = "S1 start on a printer the job did not ask for or that lacks its material"
    UNFIT_FILE = "S1 file sent to a printer the job did not ask for or that lacks its material"
    PASSED_OVER = "Q1 start that took the printer of a waiting job of higher priority"
    STALE_START = "S2 start after its deadline"
    LONG_DEADLINE = "S2 deadline beyond the dispatch window"
    DUPLICATE_START = "S3 job started twice"
    BUSY_START = "S4 start on a busy or faulted printer"
    OCCUPIED_PLATE = "S5 start on an occupied plate"
    UNCONFIRMED_PLATE = "S5 start on an unconfirmed plate"
    PLATE_CHECK_NOT_APPLIED = (
        "S5 start on an unchecked plate: the owner's plate check had not reached the printer"
    )
    HEAT_WHILE_FAULTED = "S6 heating with a latched fault"
    HEAT_UP_CAP = "Q2 more printers heating up at once than the farm's cap"
    NO_TERMINAL_STATE = "S7 job without a terminal state"
    NOT_NOTIFIED = "S7 failure nobody was told of"
    UNVERIFIED_DISPATCH = "S8 command issued without link evidence"
    DELIVERED_AFTER_FAILED_PUBLISH = "S9 command delivered after its publish failed"

    @property
    def invariant(self) -> str:
        """The invariant's name, e.g. ``S5``."""
        return self.value.split(" ", 1)[0]


AUTHORITY_KINDS = frozenset({ViolationKind.FOREIGN_START, ViolationKind.FOREIGN_FILE})
"""S1's half about tenants: who may print where."""
PLATE_KINDS = frozenset(
    {
        ViolationKind.OCCUPIED_PLATE,
        ViolationKind.UNCONFIRMED_PLATE,
        ViolationKind.PLATE_CHECK_NOT_APPLIED,
    }
)
"""S5: every way a start can land on a plate not known to be clear."""
QUEUE_KINDS = frozenset(
    {
        ViolationKind.UNFIT_START,
        ViolationKind.UNFIT_FILE,
        ViolationKind.PASSED_OVER,
        ViolationKind.HEAT_UP_CAP,
    }
)
"""A farm's queue: jobs where they fit, by priority, within the heat-up cap."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise and the facts that show it."""

    kind: ViolationKind
    evidence: str


def plate_violations(
    *,
    occupied: bool,
    unconfirmed: bool,
    printer_checks: bool,
    owner_wants_check: bool,
    occupied_as: str = "something on the plate",
) -> list[tuple[ViolationKind, str]]:
    """S5 for one start, judged with the stricter of the printer's own plate-check setting and
    its owner's desired setting when the start was issued: each broken rule with a note.

    A plate is uncleared if something lies on it, or if it has no sensor and no person said it
    was clear since the last start. An owner who turned the check back on while the printer was
    away still wanted it checked, whatever the printer had been told.
    """
    if printer_checks:
        return [
            *([(ViolationKind.OCCUPIED_PLATE, occupied_as)] if occupied else []),
            *(
                [(ViolationKind.UNCONFIRMED_PLATE, "no confirmation since the last print")]
                if unconfirmed
                else []
            ),
        ]
    if owner_wants_check and (occupied or unconfirmed):
        what = " and ".join(
            word
            for word, present in ((occupied_as, occupied), ("no confirmation", unconfirmed))
            if present
        )
        note = f"{what}; the owner wanted the plate checked, the printer's check was off"
        return [(ViolationKind.PLATE_CHECK_NOT_APPLIED, note)]
    return []


def _queue_violations(history: History) -> list[Violation]:
    """A farm's queue: every start the cloud sent fitted its job, took no printer a job of
    higher priority could have used, and kept within the heat-up cap when it landed."""
    violations: list[Violation] = []
    for issued in history.issued.values():
        if issued.kind != "start" or not issued.sent:
            continue
        where = f"{issued.printer_id} at t={issued.at} ms, job {issued.job_id}"
        if not issued.fits:
            ask = history.asks.get(issued.job_id)
            violations.append(Violation(ViolationKind.UNFIT_START, f"{where}: asked {ask}"))
        if issued.passed_over:
            passed = ", ".join(issued.passed_over)
            violations.append(Violation(ViolationKind.PASSED_OVER, f"{where}: passed {passed}"))
    cap = history.max_heating
    if not cap:
        return violations
    for start in history.starts:
        if start.command_id is None or start.command_id not in history.issued:
            continue
        heating = {
            heat.printer_id
            for heat in history.heat_ups
            if heat.command_id is not None
            and heat.at(start.at)
            # A print its user cancelled is being stopped: it counts no more.
            and history.cancelled_at.get(heat.job_id, start.at + 1) > start.at
        } | {start.printer_id}
        if len(heating) > cap:
            where = f"{start.printer_id} at t={start.at} ms, job {start.job_id}"
            listed = ", ".join(sorted(heating))
            violations.append(
                Violation(ViolationKind.HEAT_UP_CAP, f"{where}: {listed} heating, cap {cap}")
            )
    return violations


def check(
    history: History, *, dispatch_window_ms: int = 30_000, require_terminal: bool = False
) -> list[Violation]:
    """Every violation in ``history``. ``require_terminal`` once the run has settled."""
    violations: list[Violation] = []
    for stage in history.issued.values():
        where = f"{stage.printer_id} at t={stage.at} ms, job {stage.job_id}"
        if stage.kind == "stage" and stage.sent and not stage.submitter_may_operate:
            violations.append(
                Violation(
                    ViolationKind.FOREIGN_FILE,
                    f"{where}: {stage.file_url} handed over for {stage.submitter}",
                )
            )
        if stage.kind == "stage" and stage.sent and not stage.fits:
            violations.append(Violation(ViolationKind.UNFIT_FILE, where))
    violations.extend(_queue_violations(history))
    started: dict[str, str] = {}
    for start in history.starts:
        where = f"{start.printer_id} at t={start.at} ms, job {start.job_id}"
        if start.job_id not in history.intents:
            violations.append(Violation(ViolationKind.UNINTENDED_START, where))
        issued = history.issued.get(start.command_id or "")
        if issued is not None and not issued.submitter_may_operate:
            violations.append(
                Violation(
                    ViolationKind.FOREIGN_START,
                    f"{where}: asked for by {issued.submitter}, issued at t={issued.at} ms",
                )
            )
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
        violations.extend(
            Violation(kind, f"{where}: {note}")
            for kind, note in plate_violations(
                occupied=start.plate_occupied,
                unconfirmed=not start.has_plate_sensor and not start.plate_confirmed,
                printer_checks=start.plate_check,
                # A start from the printer's own screen answers to the printer's setting alone.
                owner_wants_check=issued is not None and issued.desired_plate_check,
            )
        )
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
