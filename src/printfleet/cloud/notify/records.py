"""What the announcer's parts need of the store, as narrow protocols: each names only the
methods of one repository that a part calls. The store's repositories satisfy them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from printfleet.cloud.store import (
    AlertRecord,
    ChannelRecord,
    DeliveryRecord,
    JobRecord,
    JSONValue,
    Severity,
)


class AlertBook(Protocol):
    """Where alerts are kept: raised once per id, resolved when their condition clears (the
    store's ``Alerts``)."""

    async def add(
        self,
        printer_id: str,
        *,
        kind: str,
        severity: Severity,
        message: str,
        job_id: str | None = None,
        alert_id: str | None = None,
    ) -> AlertRecord:
        """Raise an alert."""
        ...

    async def resolve(self, printer_id: str, *, kind: str, resolution: str) -> list[AlertRecord]:
        """Resolve every unresolved ``kind`` alert of a printer, because its condition cleared
        (a printer back online): ``resolution`` says how. A person's acknowledgement stays."""
        ...


class JobLookup(Protocol):
    """Jobs looked up by id, to know who submitted one a printer reports on (the store's
    ``Jobs``)."""

    async def load(self, job_id: str) -> JobRecord:
        """A job by id; raises :class:`NotFound`."""
        ...


class AudienceLookup(Protocol):
    """Who can see a printer (the store's ``Printers``)."""

    async def audience(self, printer_id: str) -> frozenset[str]:
        """Every user who can see the printer: its owner and each user it is shared with."""
        ...


class ChannelLookup(Protocol):
    """People's enabled channels, and one channel by id (the store's ``Channels``)."""

    async def enabled_for(self, user_ids: Collection[str]) -> list[ChannelRecord]:
        """The enabled channels of any of ``user_ids``, oldest first."""
        ...

    async def get(self, channel_id: str) -> ChannelRecord:
        """One channel; raises :class:`NotFound`."""
        ...


class DeliveryQueue(Protocol):
    """The durable queue of deliveries every replica shares (the store's ``Deliveries``)."""

    async def enqueue(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        hold_ms: int = 0,
    ) -> DeliveryRecord:
        """Queue ``payload`` for a channel, once per ``event_key``: a repeated key returns the
        delivery queued first. Raises :class:`NotFound` for an unknown channel."""
        ...

    async def claim(self, *, limit: int = 20, lease_ms: int = 30_000) -> list[DeliveryRecord]:
        """Take up to ``limit`` deliveries that are due, for ``lease_ms``."""
        ...

    async def succeeded(self, delivery_id: str, *, attempts: int | None = None) -> None:
        """Mark a claimed delivery as delivered (after ``attempts`` tries, if the sender says)."""
        ...

    async def failed(self, delivery_id: str, *, error: str, retry_at: int | None) -> None:
        """Record a failed attempt: try again at ``retry_at``, or give up (dead-letter) if None."""
        ...

    async def record_dead_letter(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        attempts: int,
        error: str,
    ) -> DeliveryRecord:
        """Keep a delivery that a sender gave up on (one it never queued here, or one it did),
        for a person or a job to look at and retry."""
        ...
