"""The cloud's store: the single source of truth for jobs, users, printers and their history.

SQLite (a file, WAL) for one machine, PostgreSQL for replicas; the schema comes from
``printfleet.cloud.migrations``. Open it with :func:`open_store`. :class:`Store` hands out one
repository per aggregate (``accounts``, ``printers``, ``files``, ``jobs``, ``audit``,
``alerts``, ``channels``, ``pools``, ``deliveries``, ``telemetry``), all sharing one transaction
and error layer (:mod:`~printfleet.cloud.store.engine`, :mod:`~printfleet.cloud.store.errors`);
every repository method is one short transaction and returns frozen records, never ORM objects.
"""

from printfleet.cloud.store.accounts import Accounts
from printfleet.cloud.store.alerts import Alerts
from printfleet.cloud.store.audit import AuditLog
from printfleet.cloud.store.channels import Channels
from printfleet.cloud.store.deliveries import Deliveries
from printfleet.cloud.store.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyMismatch,
    NotFound,
    StateConflict,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from printfleet.cloud.store.files import Files
from printfleet.cloud.store.ids import new_id, token_digest, wall_clock_ms
from printfleet.cloud.store.jobs import CANCEL_WATCH_MS, MAX_COPIES, Jobs
from printfleet.cloud.store.pools import Pools
from printfleet.cloud.store.printers import Printers
from printfleet.cloud.store.records import (
    AlertRecord,
    AuditRecord,
    ChannelRecord,
    DeliveryRecord,
    FileRecord,
    JobCreated,
    JobRecord,
    PoolRecord,
    PrinterAccess,
    PrinterRecord,
    TelemetryRecord,
    TokenRecord,
    UserRecord,
)
from printfleet.cloud.store.store import Store, open_store
from printfleet.cloud.store.telemetry import TelemetryLog
from printfleet.cloud.store.values import (
    Actor,
    ActorKind,
    AuditNote,
    ChannelKind,
    FileMetadata,
    JSONObject,
    JSONValue,
    Role,
    Severity,
    ShareRole,
)

__all__ = [
    "CANCEL_WATCH_MS",
    "MAX_COPIES",
    "Accounts",
    "Actor",
    "ActorKind",
    "AlertRecord",
    "Alerts",
    "AlreadyExists",
    "AuditLog",
    "AuditNote",
    "AuditRecord",
    "ChannelKind",
    "ChannelRecord",
    "Channels",
    "Conflict",
    "Deliveries",
    "DeliveryRecord",
    "FileMetadata",
    "FileRecord",
    "Files",
    "IdempotencyMismatch",
    "JSONObject",
    "JSONValue",
    "JobCreated",
    "JobRecord",
    "Jobs",
    "NotFound",
    "PoolRecord",
    "Pools",
    "PrinterAccess",
    "PrinterRecord",
    "Printers",
    "Role",
    "Severity",
    "ShareRole",
    "StateConflict",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "TelemetryLog",
    "TelemetryRecord",
    "TokenRecord",
    "UserRecord",
    "new_id",
    "open_store",
    "token_digest",
    "wall_clock_ms",
]
