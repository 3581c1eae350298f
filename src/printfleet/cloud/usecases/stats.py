"""History and costs: ended jobs counted per printer, per submitter or per printer model.

What a figure rests on, so nobody reads more into it than is there:

- print hours run from the last start command the cloud sent that may have reached the printer
  to the job's end; jobs that never got one (expired, rejected before sending, cancelled while
  queued) add none;
- filament comes from the file's slicer metadata and only for completed jobs (a failed or
  cancelled print used an unknown part of it); grams and material are counted only where the
  metadata gave them, never derived from the length: ``filament_unknown_jobs`` says how many
  completed jobs gave no grams, and grams with no material go under ``unknown``;
- energy is print hours times the model's power draw setting, not a measurement;
- cost is energy times the price per kWh plus known filament times its material's price per kg.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from printfleet.cloud.store.stats import PRINTED_STATES, JobHistoryRow
from printfleet.cloud.usecases.ports import JobHistoryRecords
from printfleet.cloud.usecases.principal import Principal, Scope
from printfleet.protocol.lifecycle import JobState

OUTCOMES = (
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.CANCELLED,
    JobState.EXPIRED,
    JobState.REJECTED,
)
UNKNOWN_MATERIAL = "unknown"
NO_PRINTER = "(unassigned)"
NO_POOL = "(no pool of yours)"
_MS_PER_HOUR = 3_600_000


class GroupBy(StrEnum):
    """What statistics are grouped by."""

    PRINTER = "printer"
    USER = "user"
    MODEL = "model"
    POOL = "pool"
    """The caller's pool each job was submitted to (by name); every other job in one group."""


@dataclass(frozen=True, slots=True)
class CostRates:
    """Prices and power draws statistics turn hours and grams into money with."""

    currency: str = "EUR"
    price_per_kwh: float = 0.30
    material_price_per_kg: float = 25.0
    material_prices: Mapping[str, float] = field(default_factory=dict)
    """Price per kg by material name (case-insensitive); others cost ``material_price_per_kg``."""
    power_w: float = 100.0
    model_power_w: Mapping[str, float] = field(default_factory=dict)
    """Average power draw while printing by printer model; others draw ``power_w``."""

    def price_per_kg(self, material: str) -> float:
        """The price of one kg of ``material``."""
        prices = {name.lower(): price for name, price in self.material_prices.items()}
        return prices.get(material.lower(), self.material_price_per_kg)

    def power_of(self, model: str | None) -> float:
        """The power draw, in watts, of a printer of ``model`` while it prints."""
        if model is None:
            return self.power_w
        return self.model_power_w.get(model, self.power_w)


@dataclass(frozen=True, slots=True)
class GroupStats:
    """The figures of one group (a printer, a submitter, a model, or all of them)."""

    key: str
    jobs: Mapping[str, int]
    """Ended jobs by outcome (every outcome present, 0 where none)."""
    total_jobs: int
    success_rate: float | None
    """Completed ÷ (completed + failed): of the prints that ran to an end, the share that
    succeeded; None when none did. Cancelled, expired and rejected jobs are not counted."""
    print_hours: float
    filament_mm: float
    filament_g: Mapping[str, float]
    """Grams of filament of completed jobs by material, where the metadata gave grams."""
    filament_unknown_jobs: int
    energy_kwh: float
    energy_cost: float
    material_cost: float
    cost: float


@dataclass(frozen=True, slots=True)
class StatsReport:
    """Statistics of the ended jobs a user may see, in a time range."""

    by: GroupBy
    since: int | None
    until: int | None
    rates: CostRates
    groups: list[GroupStats]
    total: GroupStats


@dataclass
class _Tally:
    jobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    print_ms: int = 0
    energy_w_ms: float = 0.0
    """Printing time times power draw, in watt-milliseconds."""
    filament_mm: float = 0.0
    filament_g: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    filament_unknown_jobs: int = 0

    def add(self, row: JobHistoryRow, rates: CostRates) -> None:
        self.jobs[row.state] = self.jobs.get(row.state, 0) + 1
        if row.started_at is not None and row.state in _PRINTED:
            printed = max(0, row.ended_at - row.started_at)
            self.print_ms += printed
            self.energy_w_ms += printed * rates.power_of(row.model)
        if row.state is JobState.COMPLETED:
            if row.filament_mm is not None:
                self.filament_mm += row.filament_mm
            if row.filament_g is None:
                self.filament_unknown_jobs += 1
            else:
                self.filament_g[row.material or UNKNOWN_MATERIAL] += row.filament_g

    def result(self, key: str, rates: CostRates) -> GroupStats:
        completed, failed = self.jobs[JobState.COMPLETED], self.jobs[JobState.FAILED]
        kwh = self.energy_w_ms / _MS_PER_HOUR / 1000
        energy_cost = kwh * rates.price_per_kwh
        material_cost = sum(
            grams / 1000 * rates.price_per_kg(material)
            for material, grams in self.filament_g.items()
        )
        return GroupStats(
            key=key,
            jobs={str(state): count for state, count in self.jobs.items()},
            total_jobs=sum(self.jobs.values()),
            success_rate=round(completed / (completed + failed), 4) if completed + failed else None,
            print_hours=round(self.print_ms / _MS_PER_HOUR, 4),
            filament_mm=round(self.filament_mm, 2),
            filament_g={material: round(g, 2) for material, g in sorted(self.filament_g.items())},
            filament_unknown_jobs=self.filament_unknown_jobs,
            energy_kwh=round(kwh, 4),
            energy_cost=round(energy_cost, 2),
            material_cost=round(material_cost, 2),
            cost=round(energy_cost + material_cost, 2),
        )


_PRINTED = PRINTED_STATES


def _key(row: JobHistoryRow, by: GroupBy) -> str:
    if by is GroupBy.USER:
        return row.submitter_email
    if by is GroupBy.MODEL:
        return row.model or NO_PRINTER
    if by is GroupBy.POOL:
        return row.pool_name or NO_POOL
    return row.printer_id or NO_PRINTER


def summarize(
    rows: Iterable[JobHistoryRow],
    *,
    by: GroupBy,
    rates: CostRates,
    since: int | None = None,
    until: int | None = None,
) -> StatsReport:
    """Count ``rows`` into groups by ``by`` and in total."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    total = _Tally()
    for row in rows:
        tallies[_key(row, by)].add(row, rates)
        total.add(row, rates)
    return StatsReport(
        by=by,
        since=since,
        until=until,
        rates=rates,
        groups=[tallies[key].result(key, rates) for key in sorted(tallies)],
        total=total.result("all", rates),
    )


class StatsActions:
    """Statistics as people ask for them."""

    def __init__(self, history: JobHistoryRecords, rates: CostRates) -> None:
        self.history = history
        self.rates = rates

    async def stats(
        self,
        principal: Principal,
        *,
        by: GroupBy = GroupBy.PRINTER,
        since: int | None = None,
        until: int | None = None,
    ) -> StatsReport:
        """The caller's statistics: the jobs they submitted and the jobs on printers they own
        (as a job is visible to them), ended in ``[since, until)`` (cloud ms)."""
        principal.require(Scope.READ)
        rows = await self.history.ended_jobs(principal.user.id, since=since, until=until)
        return summarize(rows, by=by, rates=self.rates, since=since, until=until)
