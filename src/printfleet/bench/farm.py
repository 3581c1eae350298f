"""``printfleet bench farm``: a demo farm left printing for simulated hours, then audited.

A fleet of simulated printers with a plate attendant (a person who takes each print off a while
after it ends and, on printers without a plate sensor, confirms the plate) prints a queue that is
kept full through the HTTP API, as a farm's operators would keep it. After the simulated hours the
queue is left to drain and every job is accounted for:

- every job ends completed: none failed, none expired, none still open;
- no print started onto an occupied plate (the simulated plates count it);
- the statistics the API reports agree with the jobs that ran, per printer.

Anything else is a finding, listed in the report; ``--check`` turns findings into exit status 1.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from printfleet.client.async_client import AsyncClient
from printfleet.client.models import Job, PrintFile
from printfleet.demo import DemoOptions, RunningDemo, running_demo
from printfleet.protocol.lifecycle import JobState
from printfleet.sim import make_sample_gcode

_OPEN = [JobState.QUEUED, JobState.STAGED, JobState.DISPATCHED, JobState.PRINTING, JobState.PAUSED]
_Kind = tuple[str | None, str | None]
"""A kind of work: a model, and the material it needs (None: any)."""
_POLL_S = 0.25
_EXPECTED_ALERTS = frozenset({"plate_confirmation_needed", "printer_offline"})
"""Alerts a healthy farm raises: plates waiting for the attendant, printers going at the end."""
"""Real seconds between looks at the queue."""


@dataclass(frozen=True, slots=True)
class FarmSettings:
    """What the farm run does. Hours and seconds named "simulated" are the printers' time."""

    printers: int = 6
    hours: float = 10.0
    """Simulated hours of submitting work."""
    time_scale: float = 60.0
    """Simulated seconds per real second: ten simulated hours in ten real minutes. The agents
    read their heaters every 0.3 simulated seconds, 5 ms of real time at this speed, which a
    shared 2-core machine running the cloud and every agent keeps up with."""
    layers: int = 20
    """Layers of each sample print: about 400 simulated seconds with heating."""
    attendant_after_s: float | None = 120.0
    """Simulated seconds after a print ends until the attendant clears its plate; None: nobody
    does (the farm then stalls, and the audit says so)."""
    waiting_per_printer: int = 1
    """Jobs kept waiting in the queue per printer, beyond those printing."""
    drain_factor: float = 4.0
    """After the hours, open jobs get this many print durations (simulated) to end."""
    broker_url: str | None = None
    """An external broker; None: the cloud's embedded one."""

    @classmethod
    def quick(cls) -> "FarmSettings":
        """The CI smoke run: four printers, half a simulated hour."""
        return cls(printers=4, hours=0.5)


@dataclass(slots=True)
class FarmReport:
    """What the run saw and what it found."""

    settings: FarmSettings
    simulated_hours: float = 0.0
    real_s: float = 0.0
    submitted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    per_printer: Counter[str] = field(default_factory=Counter)
    """Completed jobs per printer, as the jobs say."""
    stats_per_printer: dict[str, int] = field(default_factory=dict)
    """Completed jobs per printer, as the statistics say."""
    stats_print_hours: float = 0.0
    prints_on_occupied_plate: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts raised, by kind."""
    findings: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        """Jobs that completed."""
        return self.outcomes[JobState.COMPLETED.value]

    @property
    def passed(self) -> bool:
        """Whether nothing was found."""
        return not self.findings


class FarmError(Exception):
    """The farm could not be run (it never came online, the API refused the set-up)."""


async def run_farm(
    settings: FarmSettings,
    *,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> FarmReport:
    """Run the farm for ``settings.hours`` simulated hours, drain it, and audit every job."""
    say = progress or (lambda _line: None)
    with TemporaryDirectory(prefix="printfleet-farm-") as scratch:
        options = DemoOptions(
            data_dir=data_dir or Path(scratch) / "demo",
            port=0,
            printers=settings.printers,
            broker_url=settings.broker_url,
            time_scale=settings.time_scale,
            telemetry_period_s=0.5,
            probe_interval_s=0.5,
            submit_sample=False,
            attendant_after_s=settings.attendant_after_s,
        )
        async with running_demo(options) as demo:
            try:
                await demo.wait_until_online()
            except TimeoutError as error:
                raise FarmError("the demo farm did not come online") from error
            async with AsyncClient(demo.url, demo.token, timeout=30.0) as client:
                return await _Farm(demo, client, settings, say).run(Path(scratch))


class _Farm:
    def __init__(
        self,
        demo: RunningDemo,
        client: AsyncClient,
        settings: FarmSettings,
        say: Callable[[str], None],
    ) -> None:
        self.demo = demo
        self.client = client
        self.settings = settings
        self.say = say
        self.report = FarmReport(settings)
        self.job_ids: list[str] = []
        any_printer = next(iter(demo.printers.values()))
        self.clock = any_printer.hardware.clock

    def simulated_s(self, since: float) -> float:
        return self.clock.now() - since

    async def run(self, scratch: Path) -> FarmReport:
        started_real, started = time.monotonic(), self.clock.now()
        file = await self._upload(scratch)
        await self._confirm_fresh_plates()
        fleet = await self._kinds()
        depth = 1 + self.settings.waiting_per_printer
        target_s = self.settings.hours * 3600.0
        self.say(f"printing for {self.settings.hours:g} simulated hours")
        next_hour = 3600.0
        while (elapsed := self.simulated_s(started)) < target_s:
            waiting = Counter(
                (job.model, job.requirements.material) for job in await self._open_jobs()
            )
            for kind, printers in sorted(fleet.items(), key=lambda item: str(item[0])):
                for _ in range(printers * depth - waiting[kind]):
                    await self._submit(file, kind)
            if elapsed >= next_hour:
                self.say(f"{elapsed / 3600:.0f} h: {self.report.submitted} jobs submitted")
                next_hour += 3600.0
            await asyncio.sleep(_POLL_S)
        self.say("hours done: letting the queue drain")
        await self._drain()
        self.report.simulated_hours = self.simulated_s(started) / 3600.0
        self.report.real_s = time.monotonic() - started_real
        await self._audit()
        return self.report

    async def _upload(self, scratch: Path) -> PrintFile:
        path = scratch / "farm-cube.gcode"
        path.write_bytes(make_sample_gcode(self.settings.layers).encode())
        return await self.client.upload(path)

    async def _confirm_fresh_plates(self) -> None:
        # A printer without a plate sensor knows nothing of its plate when it starts: the
        # operator walks the floor once, as a farm does each morning. The attendant does the
        # rest, after every print.
        for printer_id, printer in sorted(self.demo.printers.items()):
            if not printer.hardware.has_plate_sensor:
                await self.client.confirm_plate(printer_id)

    async def _kinds(self) -> Counter[_Kind]:
        """The work the farm is loaded for: per model, the material in each printer's first
        slot (as the printers report it), with as many printers as have it there. Jobs ask for
        that material, so the queue goes through routing by material as a farm's does."""
        kinds: Counter[_Kind] = Counter()
        for printer in await self.client.list_printers():
            first = min(printer.materials, key=lambda slot: slot.slot, default=None)
            kinds[printer.model, None if first is None else first.material] += 1
        return kinds

    async def _submit(self, file: PrintFile, kind: "_Kind") -> None:
        model, material = kind
        job = await self.client.create_job(
            file.id, model=model, material=material, nozzle_um=None, start_within_s=3600
        )
        self.job_ids.append(job.id)
        self.report.submitted += 1

    async def _open_jobs(self) -> list[Job]:
        return await self.client.list_jobs(states=_OPEN, limit=200)

    async def _drain(self) -> None:
        per_print_s = self.settings.layers * 20.0 + (self.settings.attendant_after_s or 0.0)
        budget_s = self.settings.drain_factor * per_print_s
        began = self.clock.now()
        # The cloud tells of job ends on its event stream, but a count of open jobs is the
        # question here, and the job list answers it directly.
        while await self._open_jobs() and self.simulated_s(began) < budget_s:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)

    async def _audit(self) -> None:
        report = self.report
        jobs = [await self.client.get_job(job_id) for job_id in self.job_ids]
        for job in jobs:
            report.outcomes[job.state.value] += 1
            if job.state is JobState.COMPLETED and job.assigned_printer is not None:
                report.per_printer[job.assigned_printer] += 1
        for job in jobs:
            if job.state is JobState.COMPLETED:
                continue
            ended = "ended" if job.state.terminal else "is still"
            report.findings.append(
                f"job {job.id} ({job.name}) {ended} {job.state.value}: {job.reason or '-'}"
            )
        report.prints_on_occupied_plate = sum(
            p.hardware.plate.prints_on_occupied_plate for p in self.demo.printers.values()
        )
        if report.prints_on_occupied_plate:
            report.findings.append(
                f"{report.prints_on_occupied_plate} prints started onto an occupied plate"
            )
        if report.completed == 0:
            report.findings.append("no job completed")
        # Every alert of the run, from the store: the API pages the newest hundred.
        store = self.demo.context.store
        for alert in await store.alerts.latest(printer_ids=list(self.demo.printers), limit=100_000):
            report.alerts[alert.kind] += 1
            if alert.kind not in _EXPECTED_ALERTS:
                report.findings.append(f"{alert.kind} alert on {alert.printer_id}: {alert.message}")
        stats = await self.client.stats(by="printer")
        report.stats_per_printer = {
            group.key: group.jobs.get(JobState.COMPLETED.value, 0) for group in stats.groups
        }
        report.stats_print_hours = stats.total.print_hours
        if report.stats_per_printer != {k: v for k, v in report.per_printer.items() if v}:
            report.findings.append(
                f"statistics say {report.stats_per_printer} completed per printer, "
                f"the jobs say {dict(report.per_printer)}"
            )


def report_rows(report: FarmReport) -> Sequence[tuple[str, str]]:
    """The report as (figure, value) rows, for a table."""
    settings = report.settings
    outcomes = ", ".join(f"{n} {state}" for state, n in sorted(report.outcomes.items())) or "-"
    printer_hours = settings.printers * report.simulated_hours
    return (
        ("printers", str(settings.printers)),
        ("simulated hours (incl. draining)", f"{report.simulated_hours:.2f}"),
        ("real seconds", f"{report.real_s:.0f} at {settings.time_scale:g}x"),
        ("jobs submitted", str(report.submitted)),
        ("jobs by outcome", outcomes),
        (
            "completed per printer-hour",
            f"{report.completed / printer_hours:.2f}" if printer_hours else "-",
        ),
        ("prints onto an occupied plate", str(report.prints_on_occupied_plate)),
        ("alerts", _counts(report.alerts)),
        ("completed per printer (jobs)", _counts(report.per_printer)),
        ("completed per printer (statistics)", _counts(report.stats_per_printer)),
        ("findings", str(len(report.findings))),
    )


def _counts(counts: dict[str, int] | Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items()) if n) or "-"


__all__ = ["FarmError", "FarmReport", "FarmSettings", "report_rows", "run_farm"]
