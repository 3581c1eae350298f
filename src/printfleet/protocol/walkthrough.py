"""A scripted conversation between a cloud and one printer, through the real protocol core.

``printfleet protocol demo`` prints it: each step shows what was sent and what the printer's
gate decided, so a newcomer sees S2 to S6 at work without a broker or a printer.
"""

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from printfleet.protocol.gate import PrinterState
from printfleet.protocol.messages import (
    CommandBase,
    ConfirmPlateBody,
    ConfirmPlateCommand,
    JobOutcome,
    StageBody,
    StageCommand,
    StartBody,
    StartCommand,
    TimeReplyBody,
    TimeReplyCommand,
    TimeRequestEvent,
    encode,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandSigner, CommandVerifier

CLOUD_EPOCH_MS = 1_800_000_000_000
"""Cloud time at the start of the walk-through; the printer's monotonic clock starts at 0."""


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the walk-through."""

    title: str
    sent: str
    verdict: str
    detail: str


def _ids() -> Iterator[str]:
    for n in itertools.count(1):
        yield str(uuid.UUID(int=n))


def _verdict(output: Output) -> tuple[str, str]:
    decision = output.decision
    if decision.accepted:
        actions = ", ".join(type(action).__name__ for action in decision.actions) or "-"
        return "accepted", f"actions: {actions}"
    return f"rejected {decision.reason}", decision.detail


def walk_through() -> list[Step]:
    """Run the scripted conversation and return its steps."""
    ids = _ids()
    signer = CommandSigner.generate()
    printer = PrinterCore(
        PrinterState(printer_id="p1-demo", has_plate_sensor=False),
        verifier=CommandVerifier(signer.public_key),
        new_id=lambda: next(ids),
    )
    offset = CLOUD_EPOCH_MS  # true cloud time = local + offset
    local = 0
    steps: list[Step] = []
    job_id = next(ids)
    data = b"G28\nG1 X10 Y10 F3000\n"
    sha = hashlib.sha256(data).hexdigest()

    def signed(command: CommandBase) -> bytes:
        return encode(signer.sign(command))

    def record(title: str, sent: str, output: Output) -> None:
        verdict, detail = _verdict(output)
        steps.append(Step(title, sent, verdict, detail))

    def start_command(issued_local: int, lifetime: int = 30_000) -> StartCommand:
        return StartCommand(
            id=next(ids),
            printer_id="p1-demo",
            job_id=job_id,
            issued_at=issued_local + offset,
            not_after=issued_local + offset + lifetime,
            body=StartBody(sha256=sha, name="cube.gcode"),
        )

    first = start_command(local)
    record("Start before the clock is synced", "start", printer.receive(signed(first), local))

    request = printer.request_time(local)
    assert isinstance(request, TimeRequestEvent)  # noqa: S101 - request_time makes these
    local += 40
    reply = TimeReplyCommand(
        id=next(ids),
        printer_id="p1-demo",
        issued_at=local - 20 + offset,
        not_after=local - 20 + offset + 5_000,
        body=TimeReplyBody(nonce=request.body.nonce, request_sent_local=request.body.sent_local),
    )
    record("Clock sync: signed time reply", "time_reply", printer.receive(signed(reply), local))
    estimate = printer.clock(local)
    steps[-1] = Step(
        steps[-1].title,
        "time_reply",
        steps[-1].verdict,
        f"offset known to ±{estimate.bound if estimate else '?'} ms",
    )

    stage = StageCommand(
        id=next(ids),
        printer_id="p1-demo",
        job_id=job_id,
        issued_at=local + offset,
        not_after=local + offset + 30_000,
        body=StageBody(file_url="http://cloud/files/cube", sha256=sha, size=len(data), name="cube"),
    )
    record("Stage the file (no physical effect)", "stage", printer.receive(signed(stage), local))
    record("The file arrives, checksum matches", "-", printer.staged(job_id, sha, local))

    record(
        "Start: nobody confirmed the plate",
        "start",
        printer.receive(signed(start_command(local)), local),
    )

    forged = start_command(local).model_copy(update={"sig": "AAAA"})
    record("A forged start", "start (bad sig)", printer.receive(encode(forged), local))

    late = start_command(local - 40_000)
    record("A start delivered 40 s late", "start (stale)", printer.receive(signed(late), local))

    local += 1_000
    confirm = ConfirmPlateCommand(
        id=next(ids),
        printer_id="p1-demo",
        issued_at=local + offset,
        not_after=local + offset + 30_000,
        body=ConfirmPlateBody(confirmed_by="alice"),
    )
    record(
        "Alice confirms the plate is clear",
        "confirm_plate",
        printer.receive(signed(confirm), local),
    )

    accepted = signed(start_command(local))
    record("Start: fresh, idle, plate confirmed", "start", printer.receive(accepted, local))
    record("The same start delivered again", "start (replay)", printer.receive(accepted, local))

    local += 60_000
    record(
        "The print ends",
        "-",
        printer.print_ended(JobOutcome.COMPLETED, "done", local),
    )
    job_id = next(ids)
    printer.staged(job_id, sha, local)
    record(
        "Next job: the old confirmation no longer counts",
        "start",
        printer.receive(signed(start_command(local)), local),
    )
    return steps
