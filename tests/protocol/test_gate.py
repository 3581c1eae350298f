"""The printer-side gate: every reason code, and every way a start can be allowed."""

import json

import pytest
from tests.protocol.conftest import OFFSET, counter_ids, make_printer, sync_clock

from printfleet.chaos.unsafe import PermissiveGate
from printfleet.protocol.gate import (
    CancelPrint,
    FetchFile,
    HeatersOff,
    PlateReading,
    SafetyGate,
    SetTarget,
    StartPrint,
)
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    CommandBase,
    Heater,
    JobEndedEvent,
    JobOutcome,
    JobStartedEvent,
    JournalReportEvent,
    JournalStatus,
    PlateStatus,
    PrinterStatus,
    RejectedEvent,
    StartSource,
    TimeRequestEvent,
    encode,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.reasons import Reason, is_transient
from printfleet.protocol.signing import CommandSigner, CommandVerifier

JOB = "00000000-0000-0000-0000-00000000a001"
JOB2 = "00000000-0000-0000-0000-00000000a002"
SHA = "cd" * 32
NOW = 2_000  # printer-local ms used by most tests; cloud time is NOW + OFFSET


def send(printer: PrinterCore, command: CommandBase, local: int = NOW) -> Output:
    return printer.receive(encode(command), local)


def stage(printer: PrinterCore, issuer: CommandIssuer, job: str = JOB) -> None:
    command = issuer.stage(
        "p1", job, now=NOW + OFFSET, file_url="http://c/f", sha256=SHA, size=1, name="a.gcode"
    )
    output = send(printer, command)
    assert output.actions == (FetchFile(job, "http://c/f", SHA, 1, "a.gcode"),)
    printer.staged(job, SHA, NOW)


def start(
    issuer: CommandIssuer,
    job: str = JOB,
    *,
    cloud_now: int = NOW + OFFSET,
    plate_check: bool = True,
) -> CommandBase:
    return issuer.start(
        "p1",
        job,
        now=cloud_now,
        not_after=cloud_now + 30_000,
        sha256=SHA,
        name="a.gcode",
        plate_check=plate_check,
    )


def confirm_locally(printer: PrinterCore, local: int = NOW) -> None:
    assert printer.confirm_plate_locally("alice", local).decision.accepted


def refusal(output: Output) -> Reason | None:
    assert not output.decision.accepted
    (event,) = [e for e in output.events if isinstance(e, RejectedEvent)]
    assert event.body.reason is output.decision.reason
    return output.decision.reason


def status_of(printer: PrinterCore) -> PrinterStatus:
    """Read afresh (a plain attribute read would be narrowed by the type checker)."""
    return printer.state.status


def ready_printer(printer: PrinterCore, issuer: CommandIssuer) -> PrinterCore:
    stage(printer, issuer)
    confirm_locally(printer)
    return printer


# -- acceptance ------------------------------------------------------------------------------


def test_a_fresh_start_on_a_ready_printer_prints(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    output = send(printer, start(issuer))
    assert output.decision.accepted
    assert output.actions == (StartPrint(JOB, "a.gcode"),)
    assert printer.state.status is PrinterStatus.PRINTING
    assert printer.journal.job_status(JOB) is JournalStatus.STARTED
    started = [e for e in output.events if isinstance(e, JobStartedEvent)]
    assert started[0].body.source is StartSource.CLOUD
    # The journal records come first so that the agent persists them before acting.
    assert [r.kind.value for r in output.records] == ["command_seen", "job_started"]


def test_a_sensor_reading_clear_allows_a_start_without_confirmation(
    signer: CommandSigner, issuer: CommandIssuer
) -> None:
    printer = make_printer(signer, sensor=True)
    sync_clock(printer, issuer, 1_000)
    stage(printer, issuer)
    printer.plate_reading(PlateReading.CLEAR, NOW)
    assert send(printer, start(issuer)).decision.accepted


def test_plate_check_off_skips_the_plate_rule_and_is_journaled(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    stage(printer, issuer)
    off = issuer.set_plate_check("p1", now=NOW + OFFSET, enabled=False, by="owner")
    output = send(printer, off)
    assert output.decision.accepted
    assert any(r.enabled is False for r in output.records)
    assert printer.state.plate_status() is PlateStatus.UNCHECKED
    assert send(printer, start(issuer, plate_check=False)).decision.accepted


def test_a_start_that_asks_for_the_plate_check_gets_it_whatever_the_printer_says(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    # The owner turned the check back on while the printer was away: the printer still has it
    # off, but the start carries the cloud's setting, and the stricter of the two wins (S5).
    stage(printer, issuer)
    off = issuer.set_plate_check("p1", now=NOW + OFFSET, enabled=False, by="owner")
    assert send(printer, off).decision.accepted
    assert refusal(send(printer, start(issuer))) is Reason.PLATE_UNCONFIRMED
    confirm_locally(printer, NOW + 1)
    assert send(printer, start(issuer)).decision.accepted


# -- every reason code ------------------------------------------------------------------------


def test_malformed_and_unsupported_payloads(printer: PrinterCore) -> None:
    assert refusal(printer.receive(b"{nope", NOW)) is Reason.MALFORMED
    assert refusal(printer.receive(b'{"v": 9}', NOW)) is Reason.UNSUPPORTED_VERSION


def test_bad_signature(printer: PrinterCore, issuer: CommandIssuer) -> None:
    forged = CommandIssuer(CommandSigner.generate(), counter_ids()).cancel(
        "p1", JOB, now=NOW + OFFSET
    )
    assert refusal(send(printer, forged)) is Reason.BAD_SIGNATURE
    unsigned = json.loads(encode(start(issuer)))
    unsigned["sig"] = ""
    assert refusal(printer.receive(json.dumps(unsigned).encode(), NOW)) is Reason.BAD_SIGNATURE


def test_wrong_printer(printer: PrinterCore, issuer: CommandIssuer) -> None:
    command = issuer.cancel("p2", JOB, now=NOW + OFFSET)
    assert refusal(send(printer, command)) is Reason.WRONG_PRINTER


def test_duplicate_command_even_after_a_refusal(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    stage(printer, issuer)
    command = start(issuer)
    assert refusal(send(printer, command)) is Reason.PLATE_UNCONFIRMED
    confirm_locally(printer)
    # The same start, delivered late but within its window, is never judged twice.
    assert refusal(send(printer, command)) is Reason.DUPLICATE


def test_already_started_under_another_command(printer: PrinterCore, issuer: CommandIssuer) -> None:
    ready_printer(printer, issuer)
    assert send(printer, start(issuer)).decision.accepted
    printer.print_ended(JobOutcome.COMPLETED, "", NOW + 10)
    confirm_locally(printer, NOW + 20)
    printer.staged(JOB, SHA, NOW + 20)
    assert refusal(send(printer, start(issuer), NOW + 30)) is Reason.ALREADY_STARTED


def test_clock_unsynced(signer: CommandSigner, issuer: CommandIssuer) -> None:
    printer = make_printer(signer)
    assert refusal(send(printer, start(issuer))) is Reason.CLOCK_UNSYNCED


def test_clock_bound_too_wide(signer: CommandSigner, issuer: CommandIssuer) -> None:
    printer = make_printer(signer)
    sync_clock(printer, issuer, 1_000, rtt=3_000)  # ±1.5 s is too loose to judge deadlines
    assert refusal(send(printer, start(issuer), 4_500)) is Reason.CLOCK_UNSYNCED


def test_window_too_long(printer: PrinterCore, issuer: CommandIssuer) -> None:
    long_lived = start(issuer).model_copy(update={"not_after": NOW + OFFSET + 61_000})
    assert refusal(send(printer, issuer._signer.sign(long_lived))) is Reason.WINDOW_TOO_LONG


def test_not_yet_valid(printer: PrinterCore, issuer: CommandIssuer) -> None:
    future = start(issuer, cloud_now=NOW + OFFSET + 10_000)
    assert refusal(send(printer, future)) is Reason.NOT_YET_VALID


def test_stale_at_the_upper_end_of_the_clock_bound(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    command = start(issuer)

    def latest_cloud_time(local: int) -> int:
        estimate = printer.clock(local)
        assert estimate is not None
        return estimate.cloud_time(local).latest

    # The last local instant at which cloud time cannot yet be past the deadline.
    last_ok = max(t for t in range(NOW, NOW + 30_001) if latest_cloud_time(t) <= command.not_after)
    assert last_ok < NOW + 30_000  # the bound costs a little of the window, never adds to it
    assert refusal(send(printer, command, last_ok + 1)) is Reason.STALE
    second = start(issuer)
    assert send(printer, second, last_ok).decision.accepted


def test_job_cancelled_before_its_start_arrives(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    assert send(printer, issuer.cancel("p1", JOB, now=NOW + OFFSET)).decision.accepted
    assert refusal(send(printer, start(issuer))) is Reason.JOB_CANCELLED


def test_busy(printer: PrinterCore, issuer: CommandIssuer) -> None:
    ready_printer(printer, issuer)
    assert send(printer, start(issuer)).decision.accepted
    stage(printer, issuer, JOB2)
    assert refusal(send(printer, start(issuer, JOB2))) is Reason.BUSY


def test_thermal_fault_blocks_starts_and_heating_until_cleared(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    output = printer.thermal_fault("Hotend not heating", NOW)
    assert HeatersOff() in output.actions
    assert refusal(send(printer, start(issuer))) is Reason.THERMAL_FAULT
    heat = issuer.set_temperature("p1", now=NOW + OFFSET, heater=Heater.HOTEND, target=200)
    assert refusal(send(printer, heat)) is Reason.THERMAL_FAULT
    cool = issuer.set_temperature("p1", now=NOW + OFFSET, heater=Heater.HOTEND, target=0)
    assert send(printer, cool).actions == (SetTarget(Heater.HOTEND, 0),)
    assert send(printer, issuer.clear_fault("p1", now=NOW + OFFSET, by="bob")).decision.accepted
    assert send(printer, start(issuer)).decision.accepted


def test_a_fault_while_printing_stops_the_print(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    output = printer.thermal_fault("Thermal runaway", NOW + 5)
    assert output.actions[:2] == (HeatersOff(), CancelPrint())
    ended = printer.print_ended(JobOutcome.FAILED, "thermal fault", NOW + 6)
    assert any(isinstance(e, JobEndedEvent) for e in ended.events)
    assert printer.state.status is PrinterStatus.ERROR


def test_a_latched_fault_survives_a_restart(signer: CommandSigner, issuer: CommandIssuer) -> None:
    printer = make_printer(signer)
    stored = list(printer.thermal_fault("Heater disconnected", NOW).records)
    again = PrinterCore(
        printer.state.__class__(printer_id="p1", has_plate_sensor=False),
        verifier=CommandVerifier(signer.public_key),
        new_id=counter_ids(),
        journal=Journal.replay(stored),
    )
    assert again.state.fault == "Heater disconnected"
    assert again.state.status is PrinterStatus.ERROR


def test_plate_not_clear(signer: CommandSigner, issuer: CommandIssuer) -> None:
    printer = make_printer(signer, sensor=True)
    sync_clock(printer, issuer, 1_000)
    stage(printer, issuer)
    printer.plate_reading(PlateReading.OCCUPIED, NOW)
    assert refusal(send(printer, start(issuer))) is Reason.PLATE_NOT_CLEAR


def test_an_old_sensor_reading_does_not_count(signer: CommandSigner, issuer: CommandIssuer) -> None:
    printer = make_printer(signer, sensor=True)
    sync_clock(printer, issuer, 1_000)
    stage(printer, issuer)
    printer.plate_reading(PlateReading.CLEAR, NOW - 2_001)
    assert refusal(send(printer, start(issuer))) is Reason.PLATE_UNCONFIRMED


def test_plate_unconfirmed_and_a_stale_confirmation(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    stage(printer, issuer)
    assert refusal(send(printer, start(issuer))) is Reason.PLATE_UNCONFIRMED
    confirm_locally(printer, NOW)
    later = NOW + 30 * 60_000 + 1
    late_start = start(issuer, cloud_now=later + OFFSET)
    sync_clock(printer, issuer, later - 100)
    assert refusal(send(printer, late_start, later)) is Reason.PLATE_UNCONFIRMED


def test_a_confirmation_is_consumed_by_one_print(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    printer.print_ended(JobOutcome.COMPLETED, "", NOW + 10)
    stage(printer, issuer, JOB2)
    assert printer.state.plate_status() is PlateStatus.NEEDS_CONFIRMATION
    assert refusal(send(printer, start(issuer, JOB2), NOW + 20)) is Reason.PLATE_UNCONFIRMED


def test_a_remote_confirmation_issued_before_the_print_ended_is_outdated(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    # The user pressed "clear" while the print was still running; it arrives after the end.
    early = issuer.confirm_plate("p1", now=NOW + 50 + OFFSET, by="alice")
    printer.print_ended(JobOutcome.COMPLETED, "", NOW + 100)
    assert refusal(send(printer, early, NOW + 200)) is Reason.CONFIRMATION_OUTDATED
    fresh = issuer.confirm_plate("p1", now=NOW + 300 + OFFSET, by="alice")
    assert send(printer, fresh, NOW + 310).decision.accepted


def test_confirming_during_a_print_is_refused(printer: PrinterCore, issuer: CommandIssuer) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    assert refusal(printer.confirm_plate_locally("alice", NOW)) is Reason.BUSY
    remote = issuer.confirm_plate("p1", now=NOW + OFFSET, by="alice")
    assert refusal(send(printer, remote)) is Reason.BUSY


def test_not_staged_and_checksum_mismatch(printer: PrinterCore, issuer: CommandIssuer) -> None:
    confirm_locally(printer)
    assert refusal(send(printer, start(issuer))) is Reason.NOT_STAGED
    printer.staged(JOB, "ee" * 32, NOW)
    assert refusal(send(printer, start(issuer))) is Reason.NOT_STAGED


def test_pause_resume_and_their_refusals(printer: PrinterCore, issuer: CommandIssuer) -> None:
    ready_printer(printer, issuer)
    assert refusal(send(printer, issuer.pause("p1", JOB, now=NOW + OFFSET))) is Reason.NO_SUCH_JOB
    send(printer, start(issuer))
    assert refusal(send(printer, issuer.resume("p1", JOB, now=NOW + OFFSET))) is Reason.NOT_PAUSED
    assert send(printer, issuer.pause("p1", JOB, now=NOW + OFFSET)).decision.accepted
    assert status_of(printer) is PrinterStatus.PAUSED
    other = issuer.resume("p1", JOB2, now=NOW + OFFSET)
    assert refusal(send(printer, other)) is Reason.NO_SUCH_JOB
    assert send(printer, issuer.resume("p1", JOB, now=NOW + OFFSET)).decision.accepted
    assert status_of(printer) is PrinterStatus.PRINTING


def test_cloud_disabled(printer: PrinterCore, issuer: CommandIssuer) -> None:
    printer.set_cloud_enabled(enabled=False, now_local=NOW)
    output = send(printer, start(issuer))
    assert refusal(output) is Reason.CLOUD_DISABLED
    assert printer.journal.command_count == 1  # consumed all the same


def test_stage_failed(printer: PrinterCore) -> None:
    assert refusal(printer.stage_failed(JOB, "sha256 mismatch", NOW)) is Reason.STAGE_FAILED


def test_every_reason_is_classified() -> None:
    transient = {reason for reason in Reason if is_transient(reason)}
    assert Reason.BUSY in transient
    assert Reason.BAD_SIGNATURE not in transient
    assert Reason.ALREADY_STARTED not in transient


# -- local starts, journal queries, time sync, restarts -----------------------------------------


def test_a_local_start_needs_no_deadline_but_keeps_the_plate_rule(
    signer: CommandSigner,
) -> None:
    printer = make_printer(signer)  # never synced: a person at the screen needs no cloud time
    assert refusal(printer.start_locally(JOB, "a.gcode", StartSource.SCREEN, NOW)) is (
        Reason.PLATE_UNCONFIRMED
    )
    confirm_locally(printer)
    output = printer.start_locally(JOB, "a.gcode", StartSource.SCREEN, NOW)
    assert output.decision.accepted
    started = [e for e in output.events if isinstance(e, JobStartedEvent)]
    assert started[0].body.source is StartSource.SCREEN


def test_journal_query_reports_each_job(printer: PrinterCore, issuer: CommandIssuer) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    printer.print_ended(JobOutcome.FAILED, "", NOW + 5)
    output = send(printer, issuer.journal_query("p1", (JOB, JOB2), now=NOW + OFFSET))
    (report,) = [e for e in output.events if isinstance(e, JournalReportEvent)]
    assert report.body.jobs == {JOB: JournalStatus.FAILED, JOB2: JournalStatus.UNKNOWN}


def test_a_forged_journal_query_is_refused(printer: PrinterCore) -> None:
    forged = CommandIssuer(CommandSigner.generate(), counter_ids()).journal_query(
        "p1", (JOB,), now=NOW + OFFSET
    )
    assert refusal(send(printer, forged)) is Reason.BAD_SIGNATURE


def test_time_replies_must_answer_our_own_request(
    signer: CommandSigner, issuer: CommandIssuer
) -> None:
    printer = make_printer(signer)
    request = printer.request_time(0)
    assert isinstance(request, TimeRequestEvent)
    reply = issuer.time_reply("p1", now=OFFSET + 10, nonce=request.body.nonce, request_sent_local=0)
    assert send(printer, reply, 20).decision.accepted
    # A replay of the same reply (or an unsolicited one) could drag the clock: refused.
    assert refusal(send(printer, reply, 5_000)) is Reason.DUPLICATE
    forged = CommandIssuer(CommandSigner.generate(), counter_ids()).time_reply(
        "p1", now=OFFSET, nonce=request.body.nonce, request_sent_local=0
    )
    assert refusal(send(printer, forged, 30)) is Reason.BAD_SIGNATURE


def test_a_restart_mid_print_reports_the_job_failed_and_never_reruns_it(
    signer: CommandSigner, issuer: CommandIssuer
) -> None:
    printer = make_printer(signer)
    sync_clock(printer, issuer, 1_000)
    ready_printer(printer, issuer)
    stored: list[JournalRecord] = []
    command = start(issuer)
    stored.extend(send(printer, command).records)

    rebooted = make_printer(signer)
    rebooted.journal = Journal.replay(stored)
    recovered = rebooted.recover(50)
    ended = [e for e in recovered.events if isinstance(e, JobEndedEvent)]
    assert [(e.job_id, e.body.outcome) for e in ended] == [(JOB, JobOutcome.FAILED)]
    sync_clock(rebooted, issuer, 100)
    rebooted.staged(JOB, SHA, 150)
    rebooted.confirm_plate_locally("alice", 150)
    assert refusal(send(rebooted, command, 200)) is Reason.DUPLICATE
    assert refusal(send(rebooted, start(issuer), 200)) is Reason.ALREADY_STARTED


def test_the_journal_compacts_without_losing_what_matters(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    ready_printer(printer, issuer)
    send(printer, start(issuer))
    printer.print_ended(JobOutcome.COMPLETED, "", NOW + 5)
    send(printer, issuer.cancel("p1", JOB2, now=NOW + OFFSET))
    printer.thermal_fault("x", NOW + 6)
    compacted = Journal.replay(printer.journal.live_records())
    assert compacted.job_status(JOB) is JournalStatus.COMPLETED
    assert compacted.job_status(JOB2) is JournalStatus.CANCELLED
    assert compacted.fault == "x"
    dropped = printer.journal.prune(cloud_now_earliest=NOW + OFFSET + 10**6)
    assert len(dropped) >= 2
    assert printer.journal.job_status(JOB) is JournalStatus.COMPLETED


def test_only_a_gate_handed_in_from_outside_skips_checks(
    signer: CommandSigner, issuer: CommandIssuer
) -> None:
    """The real gate has no off switch. The unsafe printer of the teeth tests and the chaos
    harness is a core handed the harness's permissive gate, and it really skips the checks: an
    unsynced printer stages and obeys a stale start onto an unconfirmed plate."""
    unsafe = make_printer(signer, gate=PermissiveGate())
    stage(unsafe, issuer)
    stale = start(issuer, cloud_now=0)
    assert send(unsafe, stale).decision.accepted
    safe = make_printer(signer)
    assert isinstance(safe.gate, SafetyGate)
    refused = send(safe, stale).decision
    assert (refused.accepted, refused.reason) == (False, Reason.CLOCK_UNSYNCED)


@pytest.mark.parametrize("reading", list(PlateReading))
def test_plate_status_is_reported(
    signer: CommandSigner, issuer: CommandIssuer, reading: PlateReading
) -> None:
    printer = make_printer(signer, sensor=True)
    printer.plate_reading(reading, NOW)
    expected = {
        PlateReading.CLEAR: PlateStatus.CLEAR,
        PlateReading.OCCUPIED: PlateStatus.OCCUPIED,
        PlateReading.UNKNOWN: PlateStatus.NEEDS_CONFIRMATION,
    }[reading]
    assert printer.state.plate_status() is expected


def test_a_plate_check_setting_sent_again_is_answered_with_the_state_and_alerts_nobody(
    printer: PrinterCore, issuer: CommandIssuer
) -> None:
    on = issuer.set_plate_check("p1", now=NOW + OFFSET, enabled=True, by="the cloud")
    output = send(printer, on)
    assert output.decision.accepted
    kinds = [type(event.body).__name__ for event in output.events]
    assert kinds == ["AckBody", "PrinterStateBody"]
    assert [r.kind for r in output.records] == [RecordKind.COMMAND_SEEN]
