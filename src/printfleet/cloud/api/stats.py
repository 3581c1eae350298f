"""History and costs of ended jobs, per printer, submitter or model, as JSON or CSV.

What each figure rests on is said in :mod:`printfleet.cloud.usecases.stats`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, BeforeValidator, Field

from printfleet.cloud.api.auth import Reader
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.usecases.stats import OUTCOMES, GroupBy, GroupStats, StatsReport

router = APIRouter(prefix="/api/v1", tags=["stats"], responses=ERROR_RESPONSES)

CSV_TYPE = "text/csv"
CSV_COLUMNS = (
    "group",
    *(str(outcome) for outcome in OUTCOMES),
    "total_jobs",
    "success_rate",
    "print_hours",
    "filament_mm",
    "filament_g",
    "filament_g_by_material",
    "filament_unknown_jobs",
    "energy_kwh",
    "energy_cost",
    "material_cost",
    "cost",
    "currency",
)


class RatesOut(BaseModel):
    """The prices and power draws the figures were computed with (the cloud's settings)."""

    currency: str
    price_per_kwh: float
    material_price_per_kg: float
    material_prices: dict[str, float]
    power_w: float
    model_power_w: dict[str, float]


class StatsGroupOut(BaseModel):
    """One group's figures; see the use case for what each rests on."""

    key: str
    jobs: dict[str, int]
    total_jobs: int
    success_rate: float | None
    print_hours: float
    filament_mm: float
    filament_g: dict[str, float]
    filament_unknown_jobs: int
    energy_kwh: float
    energy_cost: float
    material_cost: float
    cost: float

    @classmethod
    def of(cls, group: GroupStats) -> StatsGroupOut:
        """The answer for one group."""
        return cls(
            key=group.key,
            jobs=dict(group.jobs),
            total_jobs=group.total_jobs,
            success_rate=group.success_rate,
            print_hours=group.print_hours,
            filament_mm=group.filament_mm,
            filament_g=dict(group.filament_g),
            filament_unknown_jobs=group.filament_unknown_jobs,
            energy_kwh=group.energy_kwh,
            energy_cost=group.energy_cost,
            material_cost=group.material_cost,
            cost=group.cost,
        )


class StatsOut(BaseModel):
    """Statistics of the caller's ended jobs."""

    by: GroupBy
    since: int | None
    until: int | None
    currency: str
    rates: RatesOut
    groups: list[StatsGroupOut]
    total: StatsGroupOut

    @classmethod
    def of(cls, report: StatsReport) -> StatsOut:
        """The answer for a report."""
        rates = report.rates
        return cls(
            by=report.by,
            since=report.since,
            until=report.until,
            currency=rates.currency,
            rates=RatesOut(
                currency=rates.currency,
                price_per_kwh=rates.price_per_kwh,
                material_price_per_kg=rates.material_price_per_kg,
                material_prices=dict(rates.material_prices),
                power_w=rates.power_w,
                model_power_w=dict(rates.model_power_w),
            ),
            groups=[StatsGroupOut.of(group) for group in report.groups],
            total=StatsGroupOut.of(report.total),
        )


MAX_MS = 2**53
"""The largest cloud time a query may name (beyond any date a job can end)."""

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso_only(value: object) -> object:
    # Pydantic would read a number as Unix seconds; a number here is milliseconds or nothing.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        msg = "a time is cloud milliseconds (0 or more) or an ISO 8601 date or time"
        raise ValueError(msg)
    return value


Moment = Annotated[int, Field(ge=0, le=MAX_MS)] | Annotated[datetime, BeforeValidator(_iso_only)]
"""Cloud milliseconds, or an ISO 8601 / RFC 3339 date or time; anything else is refused with 422
before the route runs, so the OpenAPI document says exactly what is accepted."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: int | datetime | None) -> int | None:
    """Cloud milliseconds for a time given as milliseconds or as a date or time (UTC unless it
    says otherwise). Dates before 1970 come out negative, which simply excludes nothing."""
    if value is None or isinstance(value, int):
        return value
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def stats_csv(report: StatsReport) -> str:
    """One line per group and a last one, ``all``, for the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for group in [*report.groups, report.total]:
        writer.writerow(
            [
                group.key,
                *(group.jobs[str(outcome)] for outcome in OUTCOMES),
                group.total_jobs,
                "" if group.success_rate is None else group.success_rate,
                group.print_hours,
                group.filament_mm,
                round(sum(group.filament_g.values()), 2),
                ";".join(f"{material}:{grams}" for material, grams in group.filament_g.items()),
                group.filament_unknown_jobs,
                group.energy_kwh,
                group.energy_cost,
                group.material_cost,
                group.cost,
                report.rates.currency,
            ]
        )
    return out.getvalue()


@router.get(
    "/stats",
    response_model=StatsOut,
    responses={200: {"content": {CSV_TYPE: {}}, "description": "JSON, or CSV when asked"}},
)
async def stats(
    *,
    principal: Reader,
    context: Context,
    by: GroupBy = GroupBy.PRINTER,
    since: Annotated[
        Moment | None, Query(description="Jobs ended at or after: cloud ms or ISO 8601 (UTC)")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Jobs ended before: cloud ms or ISO 8601 (UTC)")
    ] = None,
    format: Annotated[  # noqa: A002 - the query parameter's public name
        Literal["json", "csv"] | None, Query(description="csv: as `Accept: text/csv`")
    ] = None,
    accept: Annotated[str | None, Header()] = None,
) -> StatsOut | Response:
    """Ended jobs the caller submitted or that ran on printers the caller owns: outcomes,
    success rate, print hours, filament, energy and cost, per group and in total."""
    report = await context.service.stats.stats(
        principal,
        by=by,
        since=parse_time(since),
        until=parse_time(until),
    )
    wants_csv = format == "csv" or (
        format is None and accept is not None and CSV_TYPE in accept.lower()
    )
    if wants_csv:
        return Response(
            stats_csv(report),
            media_type=CSV_TYPE,
            headers={"Content-Disposition": 'attachment; filename="printfleet-stats.csv"'},
        )
    return StatsOut.of(report)
