"""The initial schema: users, tokens, printers, shares, files, jobs, audit, alerts,
notification channels and deliveries, telemetry.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than importing the models, so that this revision keeps creating
the same tables whatever the models become; a test compares the two.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JOB_STATES = (
    "queued", "staged", "dispatched", "printing", "paused",
    "completed", "failed", "cancelled", "rejected", "expired",
)  # fmt: skip


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(
        *values,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(value) for value in values),
    )


def _ms(name: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    """Create every table, and the triggers that keep the audit log append-only."""
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        _ms("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", _JSON, nullable=False),
        _ms("created_at"),
        _ms("last_used_at", nullable=True),
        _ms("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "printers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("broker_username", sa.String(128), nullable=False),
        sa.Column("broker_password_hash", sa.Text(), nullable=False),
        sa.Column("plate_check", sa.Boolean(), nullable=False),
        sa.Column("cloud_enabled", sa.Boolean(), nullable=False),
        _ms("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_printers"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_printers_owner_id_users"),
        sa.UniqueConstraint("broker_username", name="uq_printers_broker_username"),
    )
    op.create_index("ix_printers_owner_id", "printers", ["owner_id"])
    op.create_table(
        "printer_shares",
        sa.Column("printer_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("role", _enum("share_role", "operator", "viewer"), nullable=False),
        sa.PrimaryKeyConstraint("printer_id", "user_id", name="pk_printer_shares"),
        sa.ForeignKeyConstraint(
            ["printer_id"],
            ["printers.id"],
            name="fk_printer_shares_printer_id_printers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_printer_shares_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_printer_shares_user_id", "printer_shares", ["user_id"])
    op.create_table(
        "files",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(500), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        _ms("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_files_owner_id_users"),
        sa.UniqueConstraint("storage_key", name="uq_files_storage_key"),
    )
    op.create_index("ix_files_owner_id_sha256", "files", ["owner_id", "sha256"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        _ms("created_at"),
        _ms("start_by"),
        sa.Column("state", _enum("job_state", *_JOB_STATES), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("printer_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(40), nullable=True),
        sa.Column("assigned_printer", sa.String(64), nullable=True),
        _ms("stage_sent_at", nullable=True),
        sa.Column("stage_command_id", sa.String(36), nullable=True),
        sa.Column("command_id", sa.String(36), nullable=True),
        _ms("not_after", nullable=True),
        _ms("last_query_at", nullable=True),
        sa.Column("query_id", sa.String(36), nullable=True),
        _ms("cancel_sent_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("file_id", sa.String(36), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("notify_completion", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        _ms("ended_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["printer_id"], ["printers.id"], name="fk_jobs_printer_id_printers"
        ),
        sa.ForeignKeyConstraint(
            ["assigned_printer"], ["printers.id"], name="fk_jobs_assigned_printer_printers"
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_jobs_owner_id_users"),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_jobs_file_id_files", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_id_idempotency_key"),
    )
    op.create_index("ix_jobs_state_ended_at", "jobs", ["state", "ended_at"])
    op.create_index("ix_jobs_assigned_printer", "jobs", ["assigned_printer"])
    op.create_index("ix_jobs_owner_id_created_at", "jobs", ["owner_id", "created_at"])
    op.create_table(
        "audit",
        sa.Column("id", _SERIAL, nullable=False, autoincrement=True),
        _ms("at"),
        sa.Column("actor_kind", _enum("actor_kind", "user", "printer", "system"), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("printer_id", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_job_id", "audit", ["job_id"])
    op.create_index("ix_audit_command_id", "audit", ["command_id"])
    op.create_index("ix_audit_printer_id_at", "audit", ["printer_id", "at"])
    _make_audit_append_only()
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("printer_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("severity", _enum("severity", "info", "warning", "critical"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _ms("created_at"),
        sa.Column("acked_by", sa.String(36), nullable=True),
        _ms("acked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(
            ["printer_id"],
            ["printers.id"],
            name="fk_alerts_printer_id_printers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_alerts_job_id_jobs", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["acked_by"], ["users.id"], name="fk_alerts_acked_by_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_alerts_printer_id_created_at", "alerts", ["printer_id", "created_at"])
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("kind", _enum("channel_kind", "webhook", "apprise"), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ms("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_notification_channels"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_notification_channels_user_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_notification_channels_user_id", "notification_channels", ["user_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("channel_id", sa.String(36), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ms("next_attempt_at"),
        _ms("delivered_at", nullable=True),
        _ms("dead_lettered_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ms("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name="fk_deliveries_channel_id_notification_channels",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("channel_id", "event_key", name="uq_deliveries_channel_id_event_key"),
    )
    op.create_index("ix_deliveries_next_attempt_at", "deliveries", ["next_attempt_at"])
    op.create_table(
        "telemetry",
        sa.Column("id", _SERIAL, nullable=False, autoincrement=True),
        sa.Column("printer_id", sa.String(64), nullable=False),
        _ms("at"),
        sa.Column("data", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_telemetry"),
        sa.ForeignKeyConstraint(
            ["printer_id"],
            ["printers.id"],
            name="fk_telemetry_printer_id_printers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_telemetry_printer_id_at", "telemetry", ["printer_id", "at"])


def downgrade() -> None:
    """Drop everything the upgrade created."""
    for table in (
        "telemetry", "deliveries", "notification_channels", "alerts", "audit", "jobs", "files",
        "printer_shares", "printers", "api_tokens", "users",
    ):  # fmt: skip
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_append_only()")


def _make_audit_append_only() -> None:
    # Triggers, not permissions: they hold for every database user, the owner included, and
    # on SQLite, which has no permissions. A deliberate purge must drop them first.
    message = "the audit log is append-only"
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_append_only_{event.lower()} BEFORE {event} ON audit "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
