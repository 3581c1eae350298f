"""The cloud's store: one database, one repository per aggregate, one transaction layer.

:class:`Store` owns the engine and hands out the repositories; each repository method is one
short transaction of its own and returns frozen records, never ORM objects. Consumers take the
repository (or a narrow protocol of it) they use, not the whole store.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncEngine

from printfleet.cloud.store.accounts import Accounts
from printfleet.cloud.store.alerts import Alerts
from printfleet.cloud.store.audit import AuditLog
from printfleet.cloud.store.channels import Channels
from printfleet.cloud.store.deliveries import Deliveries
from printfleet.cloud.store.engine import Database, create_engine
from printfleet.cloud.store.files import Files
from printfleet.cloud.store.ids import wall_clock_ms
from printfleet.cloud.store.jobs import Jobs
from printfleet.cloud.store.maintenance import MaintenanceLog
from printfleet.cloud.store.pools import Pools
from printfleet.cloud.store.printers import Printers
from printfleet.cloud.store.sealing import SecretBox
from printfleet.cloud.store.telemetry import TelemetryLog


async def open_store(
    url: str,
    *,
    pool_size: int = 5,
    pool_timeout_s: float = 2.0,
    connect_timeout_s: float = 5.0,
    busy_timeout_ms: int = 5_000,
    clock: Callable[[], int] = wall_clock_ms,
    secrets: SecretBox | None = None,
) -> Store:
    """Connect to the database at ``url`` (SQLite file or PostgreSQL) and check that it answers.

    The schema must exist already: run ``printfleet.cloud.migrations.upgrade(url)`` first.
    ``clock`` gives the cloud time (ms) the store stamps rows with. ``secrets`` seals secret
    columns (see :class:`Store`). Raises :class:`StoreUnavailable` if the database cannot be
    reached.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        pool_timeout_s=pool_timeout_s,
        connect_timeout_s=connect_timeout_s,
        busy_timeout_ms=busy_timeout_ms,
    )
    store = Store(engine, clock=clock, secrets=secrets)
    try:
        await store.ping()
    except BaseException:
        await store.close()
        raise
    return store


class Store:
    """The cloud's database and its repositories; see :func:`open_store`.

    Besides the errors each names, any repository method may raise :class:`StoreBusy` (no
    connection or lock in time) or :class:`StoreUnavailable`.

    Secret columns (a channel's target and secret) are sealed with ``secrets``, the data
    directory's key, and opened when read. The cloud always passes it; a store opened without
    one (a test, a tool) keeps what it writes as given and cannot read sealed values
    (:class:`SecretUnreadable`); ``channels.seal_secrets()`` seals such values later.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        secrets: SecretBox | None = None,
    ) -> None:
        self.database = Database(engine, clock=clock)
        """The transaction layer the repositories share."""
        self.engine = engine
        """The engine, for health checks and tests; prefer the repositories."""
        self.url = self.database.url
        """The database URL, password masked."""
        self.accounts = Accounts(self.database)
        self.printers = Printers(self.database)
        self.files = Files(self.database)
        self.jobs = Jobs(self.database)
        self.pools = Pools(self.database)
        self.audit = AuditLog(self.database)
        self.alerts = Alerts(self.database)
        self.channels = Channels(self.database, secrets)
        self.deliveries = Deliveries(self.database)
        self.telemetry = TelemetryLog(self.database)
        self.maintenance = MaintenanceLog(self.database)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.database.close()

    async def ping(self) -> None:
        """Check that the database answers; raises StoreUnavailable or StoreBusy if not."""
        await self.database.ping()
