"""The store's and the migrations' public surfaces are deliberate: a change here is visible."""

from pathlib import Path

import printfleet.cloud.migrations
import printfleet.cloud.store
from printfleet.cloud.store import (
    Accounts,
    Alerts,
    AuditLog,
    Channels,
    Deliveries,
    Files,
    Jobs,
    Printers,
    Store,
    TelemetryLog,
)
from printfleet.cloud.store.engine import create_engine


def test_all_names_are_exported_and_exist() -> None:
    # (Their order is ruff's RUF022: constants first, then classes and functions.)
    for module in (printfleet.cloud.store, printfleet.cloud.migrations):
        for name in module.__all__:
            assert hasattr(module, name), name
        assert len(set(module.__all__)) == len(module.__all__)


def test_the_public_surface_is_pinned() -> None:
    assert set(printfleet.cloud.store.__all__) == {
        "CANCEL_WATCH_MS", "Actor", "ActorKind", "AlertRecord", "AlreadyExists", "AuditNote",
        "AuditRecord", "ChannelKind", "ChannelRecord", "Conflict", "DeliveryRecord",
        "FileMetadata", "FileRecord", "IdempotencyMismatch", "JSONObject", "JSONValue",
        "JobCreated", "JobRecord", "NotFound", "PrinterAccess", "PrinterRecord", "Role",
        "Severity", "ShareRole", "Store", "StoreBusy", "StoreError", "StoreUnavailable",
        "TelemetryRecord", "TokenRecord", "UserRecord", "new_id", "open_store", "token_digest",
        "wall_clock_ms", "MAX_COPIES", "PoolRecord", "StateConflict",
        # One repository per aggregate, as Store hands them out.
        "Accounts", "Alerts", "AuditLog", "Channels", "Deliveries", "Files", "Jobs", "Printers",
        "TelemetryLog", "Pools",
    }  # fmt: skip
    assert set(printfleet.cloud.migrations.__all__) == {
        "alembic_config", "current_revision", "downgrade", "head_revision", "upgrade",
    }  # fmt: skip


def test_store_errors_share_one_base() -> None:
    store = printfleet.cloud.store
    for error in (
        store.StoreBusy, store.StoreUnavailable, store.NotFound, store.AlreadyExists,
        store.Conflict, store.IdempotencyMismatch,
    ):  # fmt: skip
        assert issubclass(error, store.StoreError)


def test_the_store_hands_out_repositories_and_has_no_operations_of_its_own(
    tmp_path: Path,
) -> None:
    # One name per operation: a store-level alias of a repository's method would be a second.
    store = Store(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"))
    repositories = {
        "accounts": Accounts, "printers": Printers, "files": Files, "jobs": Jobs,
        "audit": AuditLog, "alerts": Alerts, "channels": Channels, "deliveries": Deliveries,
        "telemetry": TelemetryLog,
    }  # fmt: skip
    for name, repository in repositories.items():
        assert type(getattr(store, name)) is repository, name
    assert not callable(store.printers)
    own = {name for name in vars(Store) if not name.startswith("_")}
    assert own == {"close", "ping"}
