"""The cloud's store: the single source of truth for jobs, users, printers and their history.

SQLite (a file, WAL) for one machine, PostgreSQL for replicas; the schema comes from
``printfleet.cloud.migrations``. Open it with :func:`open_store`; every method of
:class:`Store` is one short transaction and returns frozen records, never ORM objects.
"""

from printfleet.cloud.store.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyMismatch,
    NotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from printfleet.cloud.store.records import (
    AlertRecord,
    AuditRecord,
    ChannelRecord,
    DeliveryRecord,
    FileRecord,
    JobCreated,
    JobRecord,
    PrinterAccess,
    PrinterRecord,
    TelemetryRecord,
    TokenRecord,
    UserRecord,
)
from printfleet.cloud.store.store import (
    CANCEL_WATCH_MS,
    Store,
    new_id,
    open_store,
    token_digest,
    wall_clock_ms,
)
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
    "Actor",
    "ActorKind",
    "AlertRecord",
    "AlreadyExists",
    "AuditNote",
    "AuditRecord",
    "ChannelKind",
    "ChannelRecord",
    "Conflict",
    "DeliveryRecord",
    "FileMetadata",
    "FileRecord",
    "IdempotencyMismatch",
    "JSONObject",
    "JSONValue",
    "JobCreated",
    "JobRecord",
    "NotFound",
    "PrinterAccess",
    "PrinterRecord",
    "Role",
    "Severity",
    "ShareRole",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "TelemetryRecord",
    "TokenRecord",
    "UserRecord",
    "new_id",
    "open_store",
    "token_digest",
    "wall_clock_ms",
]
