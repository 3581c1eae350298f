"""The printers as the running cloud reaches them: their live state, and commands that go now
or not at all (S9), each audited with its outcome."""

from __future__ import annotations

from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.cloud.store import Actor
from printfleet.cloud.usecases.ports import AuditTrail
from printfleet.cloud.usecases.principal import PrinterUnreachable
from printfleet.protocol.dispatch import PrinterView
from printfleet.protocol.messages import CommandBase, Telemetry, encode


class LiveFleet:
    """The MQTT side as use cases see it: absent (``core`` None) until the app has started it,
    and in tests that run without a broker."""

    def __init__(self, audit: AuditTrail, core: CloudCore | None = None) -> None:
        self.audit = audit
        self.core = core

    def view(self, printer_id: str) -> PrinterView | None:
        """The printer's last reported state, if any."""
        return self.core.fleet.view(printer_id) if self.core is not None else None

    def telemetry(self, printer_id: str) -> Telemetry | None:
        """The printer's last telemetry report, if any."""
        return self.core.fleet.telemetry(printer_id) if self.core is not None else None

    def evidence_age(self) -> float | None:
        """Seconds since the link last proved itself through the broker (S8), if ever."""
        return self.core.link.evidence_age() if self.core is not None else None

    def wake_dispatcher(self) -> None:
        """Ask the dispatcher to plan now: something it plans with changed."""
        if self.core is not None:
            self.core.dispatcher.wake()

    async def publish(self, command: CommandBase) -> PublishOutcome:
        """Publish ``command`` to its printer now, or not at all."""
        if self.core is None:
            return PublishOutcome.NOT_SENT
        topic = self.core.topics.commands(command.printer_id)
        return await self.core.link.publish(topic, encode(command))

    async def send(self, user_id: str, command: CommandBase, action: str) -> None:
        """Publish a person's command now or fail now (S9), and audit it as ``action`` with its
        outcome either way; raises :class:`PrinterUnreachable` if it was not sent."""
        outcome = await self.publish(command)
        await self.audit.append(
            Actor.user(user_id),
            action,
            printer_id=command.printer_id,
            job_id=command.job_id,
            command_id=command.id,
            detail={"outcome": outcome.value},
        )
        if outcome is PublishOutcome.NOT_SENT:
            raise PrinterUnreachable(
                "not sent: the link to the printers has no fresh round-trip evidence; try again"
            )
