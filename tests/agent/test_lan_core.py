"""The sans-IO side of LAN mode: local actions through the gate, local-job reports in the journal
(kept across compaction and restarts, dropped only on a signed acknowledgement), LAN-only
printers, and the bounded offline telemetry buffer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

from printfleet.agent.telemetry import OfflineTelemetry
from printfleet.protocol.gate import PrinterState
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    HeaterTelemetry,
    JobOutcome,
    JournalStatus,
    LocalJobEvent,
    PlateStatus,
    PrinterStatus,
    StartSource,
    Telemetry,
    decode_command,
    decode_event,
    encode,
)
from printfleet.protocol.printer import PrinterCore
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner, CommandVerifier

T0 = 1_000_000
JOB = "00000000-0000-7000-8000-00000000000a"


def ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(numbers)))


def printer(signer: CommandSigner, journal: Journal | None = None, **state: object) -> PrinterCore:
    return PrinterCore(
        PrinterState(printer_id="p1", has_plate_sensor=False, **state),  # type: ignore[arg-type]
        verifier=CommandVerifier(signer.public_key),
        new_id=ids(),
        journal=journal,
    )


def test_a_local_print_is_judged_then_reported_until_acknowledged() -> None:
    signer = CommandSigner.generate()
    core = printer(signer)
    refused = core.start_locally(JOB, "cube.gcode", StartSource.LAN, T0)
    assert refused.decision.reason is Reason.PLATE_UNCONFIRMED
    assert refused.records == ()
    core.confirm_plate_locally("ada", T0 + 1)
    started = core.start_locally(JOB, "cube.gcode", StartSource.LAN, T0 + 2)
    assert started.decision.accepted
    (record,) = started.records
    assert (record.kind, record.source, record.name) == (
        RecordKind.JOB_STARTED,
        StartSource.LAN,
        "cube.gcode",
    )
    ended = core.print_ended(JobOutcome.COMPLETED, "", T0 + 2 + 62_000)
    assert [r.kind for r in ended.records] == [RecordKind.JOB_ENDED, RecordKind.LOCAL_JOB_REPORT]
    (report,) = [e for e in ended.events if isinstance(e, LocalJobEvent)]
    assert report.job_id == JOB
    assert report.body.duration_s == 62
    assert report.body.ended_at is None  # the clock was never synced
    # Encoded and decoded as any event is.
    assert decode_event(encode(report)) == report

    # A compacted journal (what a restart rebuilds from) still owes the report.
    restarted = printer(signer, Journal.replay(core.journal.live_records()))
    (again,) = restarted.local_job_reports(T0)
    assert again.job_id == JOB
    assert again.body == report.body

    # Only a signed acknowledgement settles it; a forged one is refused and changes nothing.
    issuer = CommandIssuer(signer, ids())
    ack = issuer.local_job_ack("p1", (JOB,), now=T0)
    forged = CommandIssuer(CommandSigner.generate(), ids()).local_job_ack("p1", (JOB,), now=T0)
    assert restarted.receive(encode(forged), T0).decision.reason is Reason.BAD_SIGNATURE
    assert restarted.local_job_reports(T0)
    acked = restarted.receive(encode(ack), T0)
    assert [r.kind for r in acked.records] == [RecordKind.LOCAL_JOB_ACKED]
    assert restarted.local_job_reports(T0) == []
    # A duplicate acknowledgement writes nothing.
    assert restarted.receive(encode(ack), T0).records == ()
    assert decode_command(encode(ack)) == ack


def test_a_restart_during_a_local_print_reports_it_failed_but_not_a_cloud_one() -> None:
    signer = CommandSigner.generate()
    cloud_job = "00000000-0000-7000-8000-00000000000b"
    records = [
        JournalRecord(kind=RecordKind.JOB_STARTED, job_id=cloud_job),
        JournalRecord(
            kind=RecordKind.JOB_STARTED, job_id=JOB, source=StartSource.SCREEN, name="a.gcode"
        ),
    ]
    core = printer(signer, Journal.replay(records))
    recovered = core.recover(T0)
    reports = [e for e in recovered.events if isinstance(e, LocalJobEvent)]
    assert [(e.job_id, e.body.outcome, e.body.source) for e in reports] == [
        (JOB, JobOutcome.FAILED, StartSource.SCREEN)
    ]
    assert reports[0].body.duration_s is None  # when it began died with the agent
    assert core.journal.job_status(cloud_job) is JournalStatus.FAILED
    assert list(core.journal.unacknowledged_reports()) == [JOB]


def test_local_pause_resume_and_cancel_go_through_the_gate() -> None:
    core = printer(CommandSigner.generate(), plate_check=False)
    assert core.pause_locally(T0).decision.reason is Reason.NO_SUCH_JOB
    assert core.cancel_locally(T0).decision.reason is Reason.NO_SUCH_JOB
    assert core.start_locally(JOB, "a.gcode", StartSource.LAN, T0).decision.accepted
    assert core.resume_locally(T0).decision.reason is Reason.NO_SUCH_JOB  # not paused
    assert core.pause_locally(T0).decision.accepted
    assert core.state.status is PrinterStatus.PAUSED
    core.thermal_fault("hotend thermal runaway", T0 + 1)
    # S6: a paused print heats again on resume, so a latched fault refuses it.
    assert core.resume_locally(T0 + 2).decision.reason is Reason.THERMAL_FAULT
    core.clear_fault_locally("ada", T0 + 3)
    assert core.state.status.value == "printing"  # until the stopped print reports its end
    cancelled = core.cancel_locally(T0 + 4)
    assert [r.kind for r in cancelled.records] == [RecordKind.JOB_CANCELLED]
    assert [type(a).__name__ for a in cancelled.actions] == ["CancelPrint"]
    core.print_ended(JobOutcome.CANCELLED, "cancelled at the printer", T0 + 5)
    # S3: that job can never start here again.
    again = core.start_locally(JOB, "a.gcode", StartSource.LAN, T0 + 6)
    assert again.decision.reason is Reason.JOB_CANCELLED


def test_a_lan_only_printer_refuses_cloud_commands_but_takes_acknowledgements() -> None:
    signer = CommandSigner.generate()
    issuer = CommandIssuer(signer, ids())
    core = printer(signer, cloud_enabled=False)
    confirm = issuer.confirm_plate("p1", now=T0, by="remote")
    assert core.receive(encode(confirm), T0).decision.reason is Reason.CLOUD_DISABLED
    assert core.state.confirmation is None
    # Locally, the same printer is as usable as ever.
    assert core.confirm_plate_locally("ada", T0).decision.accepted
    assert core.state.plate_status() is PlateStatus.CLEAR
    ack = issuer.local_job_ack("p1", (JOB,), now=T0)
    assert core.receive(encode(ack), T0).decision.accepted
    assert core.state_event(T0).body.cloud_enabled is False  # type: ignore[union-attr]


def _telemetry(status: PrinterStatus, hotend: int) -> Telemetry:
    return Telemetry(
        printer_id="p1",
        seq=0,
        sent_at=None,
        status=status,
        plate=PlateStatus.CLEAR,
        hotend=HeaterTelemetry(temp_dc=hotend, target_dc=0),
        bed=HeaterTelemetry(temp_dc=250, target_dc=0),
    )


def test_offline_telemetry_is_bounded_and_summarised_once() -> None:
    buffer = OfflineTelemetry(limit=3)
    assert buffer.summary(0.0) is None
    buffer.add(_telemetry(PrinterStatus.PRINTING, 2150), 10.0)
    for second in range(11, 20):
        buffer.add(_telemetry(PrinterStatus.IDLE, 300), float(second))
    assert len(buffer.kept) == 3
    assert buffer.dropped == 7
    summary = buffer.summary(40.0)
    assert summary is not None
    assert summary.startswith("Offline for 30 s: 10 telemetry reports not sent")
    # Only what was kept is summarised: the hot reading was dropped with the oldest.
    assert "showed idle, hotend up to 30.0" in summary
    assert buffer.summary(41.0) is None
