"""``CommandIssuer``: how the cloud makes commands — ids, deadlines and signatures in one place.

Every command leaves the cloud signed and with a deadline no further ahead than the issuer's
lifetime for its kind, so no code path can mint a long-lived start by accident (S2).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from printfleet.protocol.messages import (
    CancelCommand,
    ClearFaultBody,
    ClearFaultCommand,
    CommandBase,
    ConfirmPlateBody,
    ConfirmPlateCommand,
    Heater,
    JournalQueryBody,
    JournalQueryCommand,
    LocalJobAckBody,
    LocalJobAckCommand,
    PauseCommand,
    ResumeCommand,
    SetMaterialBody,
    SetMaterialCommand,
    SetNozzleBody,
    SetNozzleCommand,
    SetPlateCheckBody,
    SetPlateCheckCommand,
    SetTemperatureBody,
    SetTemperatureCommand,
    SimulateAction,
    SimulateBody,
    SimulateCommand,
    StageBody,
    StageCommand,
    StartBody,
    StartCommand,
    TimeReplyBody,
    TimeReplyCommand,
    WireModel,
)
from printfleet.protocol.signing import CommandSigner

_C = TypeVar("_C", bound=CommandBase)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long each kind of command stays valid (ms)."""

    start: int = 30_000
    """The dispatch window: the longest a start may wait in any queue (S2)."""
    control: int = 15_000
    """Pause, resume, temperature, plate and fault commands: a person is waiting on them."""
    housekeeping: int = 30_000
    """Stage, cancel and journal queries: no physical effect, or only a stopping one."""
    time_reply: int = 5_000


class CommandIssuer:
    """Makes signed commands at cloud time ``now`` (ms) with fresh ids."""

    def __init__(
        self,
        signer: CommandSigner,
        new_id: Callable[[], str],
        lifetimes: Lifetimes | None = None,
    ) -> None:
        self._signer = signer
        self._new_id = new_id
        self.lifetimes = lifetimes if lifetimes is not None else Lifetimes()

    def _issue(
        self,
        kind: type[_C],
        printer_id: str,
        *,
        now: int,
        lifetime: int,
        job_id: str | None = None,
        body: WireModel | None = None,
    ) -> _C:
        fields: dict[str, object] = {
            "id": self._new_id(),
            "printer_id": printer_id,
            "job_id": job_id,
            "issued_at": now,
            "not_after": now + lifetime,
        }
        if body is not None:
            fields["body"] = body
        return self._signer.sign(kind.model_validate(fields))

    def stage(
        self,
        printer_id: str,
        job_id: str,
        *,
        now: int,
        file_url: str,
        sha256: str,
        size: int,
        name: str,
    ) -> StageCommand:
        """Ask a printer to fetch a job's file."""
        body = StageBody(file_url=file_url, sha256=sha256, size=size, name=name)
        return self._issue(
            StageCommand,
            printer_id,
            now=now,
            lifetime=self.lifetimes.housekeeping,
            job_id=job_id,
            body=body,
        )

    def start(
        self,
        printer_id: str,
        job_id: str,
        *,
        now: int,
        not_after: int,
        sha256: str,
        name: str,
        plate_check: bool = True,
    ) -> StartCommand:
        """A start whose deadline is ``not_after``, clamped to the start lifetime."""
        lifetime = max(0, min(not_after - now, self.lifetimes.start))
        body = StartBody(sha256=sha256, name=name, plate_check=plate_check)
        return self._issue(
            StartCommand, printer_id, now=now, lifetime=lifetime, job_id=job_id, body=body
        )

    def cancel(self, printer_id: str, job_id: str, *, now: int) -> CancelCommand:
        """Cancel a job on a printer, now or whenever its start might arrive."""
        lifetime = self.lifetimes.housekeeping
        return self._issue(CancelCommand, printer_id, now=now, lifetime=lifetime, job_id=job_id)

    def pause(self, printer_id: str, job_id: str, *, now: int) -> PauseCommand:
        """Pause a running job."""
        lifetime = self.lifetimes.control
        return self._issue(PauseCommand, printer_id, now=now, lifetime=lifetime, job_id=job_id)

    def resume(self, printer_id: str, job_id: str, *, now: int) -> ResumeCommand:
        """Resume a paused job."""
        lifetime = self.lifetimes.control
        return self._issue(ResumeCommand, printer_id, now=now, lifetime=lifetime, job_id=job_id)

    def confirm_plate(self, printer_id: str, *, now: int, by: str) -> ConfirmPlateCommand:
        """A user's remote confirmation that the plate is clear."""
        body = ConfirmPlateBody(confirmed_by=by)
        lifetime = self.lifetimes.control
        return self._issue(ConfirmPlateCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def clear_fault(self, printer_id: str, *, now: int, by: str) -> ClearFaultCommand:
        """A user clears a latched fault remotely."""
        body = ClearFaultBody(cleared_by=by)
        lifetime = self.lifetimes.control
        return self._issue(ClearFaultCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def set_plate_check(
        self, printer_id: str, *, now: int, enabled: bool, by: str
    ) -> SetPlateCheckCommand:
        """The owner turns the plate check on or off."""
        body = SetPlateCheckBody(enabled=enabled, changed_by=by)
        lifetime = self.lifetimes.control
        return self._issue(SetPlateCheckCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def set_temperature(
        self, printer_id: str, *, now: int, heater: Heater, target: int
    ) -> SetTemperatureCommand:
        """Set a heater target."""
        body = SetTemperatureBody(heater=heater, target=target)
        lifetime = self.lifetimes.control
        return self._issue(SetTemperatureCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def set_material(
        self, printer_id: str, *, now: int, slot: int, material: str | None, colour: str | None
    ) -> SetMaterialCommand:
        """Say what a filament slot holds (None: empty)."""
        body = SetMaterialBody(slot=slot, material=material, colour=colour)
        lifetime = self.lifetimes.control
        return self._issue(SetMaterialCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def set_nozzle(self, printer_id: str, *, now: int, nozzle_um: int) -> SetNozzleCommand:
        """Say which nozzle is fitted."""
        body = SetNozzleBody(nozzle_um=nozzle_um)
        lifetime = self.lifetimes.control
        return self._issue(SetNozzleCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def simulate(
        self, printer_id: str, *, now: int, action: SimulateAction, fault: str | None = None
    ) -> SimulateCommand:
        """Act something out on a simulated printer."""
        body = SimulateBody(action=action, fault=fault)
        lifetime = self.lifetimes.control
        return self._issue(SimulateCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def journal_query(
        self, printer_id: str, job_ids: tuple[str, ...], *, now: int
    ) -> JournalQueryCommand:
        """Ask what a printer did about these jobs."""
        body = JournalQueryBody(job_ids=job_ids)
        lifetime = self.lifetimes.housekeeping
        return self._issue(JournalQueryCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def local_job_ack(
        self, printer_id: str, job_ids: tuple[str, ...], *, now: int
    ) -> LocalJobAckCommand:
        """Tell a printer its reports of these local jobs are recorded."""
        body = LocalJobAckBody(job_ids=job_ids)
        lifetime = self.lifetimes.housekeeping
        return self._issue(LocalJobAckCommand, printer_id, now=now, lifetime=lifetime, body=body)

    def time_reply(
        self, printer_id: str, *, now: int, nonce: str, request_sent_local: int
    ) -> TimeReplyCommand:
        """Answer a printer's time request; ``issued_at`` is the cloud time it needs."""
        body = TimeReplyBody(nonce=nonce, request_sent_local=request_sent_local)
        lifetime = self.lifetimes.time_reply
        return self._issue(TimeReplyCommand, printer_id, now=now, lifetime=lifetime, body=body)
