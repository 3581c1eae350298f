"""The printer's telemetry: one report per period, published at QoS 0 while the broker is there.

While it is not, reports are not queued for later (S9 in spirit): the newest are kept in a bounded
buffer and summarised in one line when the printer is back (`OfflineTelemetry`).
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from printfleet.agent.hardware import Hardware, HeaterId, HeaterReading
from printfleet.agent.stats import AgentStats
from printfleet.protocol.messages import (
    HeaterTelemetry,
    PrinterStatus,
    ProgressTelemetry,
    Telemetry,
)
from printfleet.protocol.printer import PrinterCore

_RUNNING = frozenset({PrinterStatus.PRINTING, PrinterStatus.PAUSED})


@dataclass(slots=True)
class OfflineTelemetry:
    """Telemetry taken while the broker was unreachable: the newest ``limit`` reports as
    (status, hotend d°C, bed d°C), and how many more were taken; summarised on return."""

    limit: int
    kept: deque[tuple[str, int, int]] = field(default_factory=deque)
    dropped: int = 0
    since_s: float | None = None

    def add(self, report: Telemetry, now_s: float) -> None:
        """Keep one report, dropping the oldest beyond the limit."""
        if self.since_s is None:
            self.since_s = now_s
        if len(self.kept) >= self.limit:
            self.kept.popleft()
            self.dropped += 1
        self.kept.append((report.status.value, report.hotend.temp_dc, report.bed.temp_dc))

    def summary(self, now_s: float) -> str | None:
        """One line on the outage, or None if nothing was taken; empties the buffer."""
        if not self.kept:
            return None
        statuses = ", ".join(dict.fromkeys(status for status, _, _ in self.kept))
        hotend = max(hotend for _, hotend, _ in self.kept) / 10
        bed = max(bed for _, _, bed in self.kept) / 10
        taken = len(self.kept) + self.dropped
        offline_s = now_s - (self.since_s or now_s)
        self.kept.clear()
        self.dropped, self.since_s = 0, None
        return (
            f"Offline for {offline_s:.0f} s: {taken} telemetry reports not sent; "
            f"the last {min(taken, self.limit)} showed {statuses}, "
            f"hotend up to {hotend:.1f} °C, bed up to {bed:.1f} °C"
        )


class TelemetryLink(Protocol):
    """Where telemetry goes: the broker session."""

    @property
    def connected(self) -> bool:
        """True while a session is up."""
        ...

    async def publish_telemetry(self, report: Telemetry) -> bool:
        """Publish now; False if there is no session or the publish failed."""
        ...


class TelemetryReporter:
    """Builds the printer's telemetry reports and sends one every period while ``run()`` runs."""

    __slots__ = (
        "_hardware",
        "_link",
        "_period_s",
        "_printer_id",
        "_progress_floor",
        "_seq",
        "_stats",
        "offline",
    )

    def __init__(
        self,
        printer_id: str,
        hardware: Hardware,
        link: TelemetryLink,
        stats: AgentStats,
        *,
        period_s: float,
        buffer_limit: int,
    ) -> None:
        self._printer_id = printer_id
        self._hardware = hardware
        self._link = link
        self._stats = stats
        self._period_s = period_s
        self.offline = OfflineTelemetry(buffer_limit)
        self._seq = 0
        self._progress_floor: tuple[str | None, int] = (None, 0)

    async def run(
        self,
        core: PrinterCore,
        clock_ms: Callable[[], int],
        *,
        read_plate: Callable[[int], None],
        resend_due_reports: Callable[[], None],
    ) -> None:
        """Every period: ``read_plate``, then a report, sent or kept; until cancelled.

        ``resend_due_reports`` runs before each report sent, so reports the cloud has not yet
        acknowledged go out again while the link is up.
        """
        while True:
            await asyncio.sleep(self._period_s)
            # Read each period, not only when a command comes: otherwise a plate cleared by
            # hand goes on looking occupied, and a job waiting for it never starts.
            read_plate(clock_ms())
            if not self._link.connected:
                # Not queued for later (S9 in spirit): kept in a bounded buffer, summarised
                # in one alert when the broker is back.
                self.offline.add(self.report(core, clock_ms()), time.monotonic())
                continue
            resend_due_reports()
            if await self._link.publish_telemetry(self.report(core, clock_ms())):
                self._stats.telemetry_sent += 1

    def report(self, core: PrinterCore, now_local: int) -> Telemetry:
        """The current telemetry report."""
        state = core.state
        hardware = self._hardware
        hotend = hardware.read_heater(HeaterId.HOTEND)
        bed = hardware.read_heater(HeaterId.BED)
        progress = None
        handle = hardware.current_print()
        if handle is not None and state.status in _RUNNING:
            snapshot = handle.progress()
            percent = max(0, min(100, int(snapshot.percent)))
            # A print never goes backwards, though a printer's estimate may (one that counts
            # bytes read until the file's own progress lines start, say): report the furthest.
            job, floor = self._progress_floor
            if job == state.job_id:
                percent = max(percent, floor)
            self._progress_floor = (state.job_id, percent)
            progress = ProgressTelemetry(
                percent=percent,
                layer=max(0, snapshot.layer),
                total_layers=snapshot.total_layers or 0,
                time_left_s=int(snapshot.time_left or 0),
            )
        self._seq += 1
        return Telemetry(
            printer_id=self._printer_id,
            seq=self._seq,
            sent_at=core.cloud_now(now_local),
            status=state.status,
            job_id=state.job_id,
            plate=state.plate_status(),
            fault=state.fault,
            hotend=_heater(hotend),
            bed=_heater(bed),
            progress=progress,
        )


def _heater(reading: HeaterReading) -> HeaterTelemetry:
    return HeaterTelemetry(
        temp_dc=round(reading.temperature * 10), target_dc=round(reading.target * 10)
    )
