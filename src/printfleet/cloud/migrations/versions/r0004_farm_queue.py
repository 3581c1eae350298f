"""A farm's queue: pools of printers, and jobs with a priority, a pool, requirements (material,
nozzle), a machine-readable wait code and copies.

Revision ID: r0004
Revises: 0003
Create Date: 2026-12-07

Existing jobs get priority 0 and no pool, requirements, wait code or batch. ``jobs.pool_id`` is
set null when its pool is deleted, which the store allows only while no open job targets the
pool (``Pools.delete``): an ended job keeps its history, a waiting one never loses its target.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOB_STATES = (
    "queued", "staged", "dispatched", "printing", "paused",
    "completed", "failed", "cancelled", "rejected", "expired",
)  # fmt: skip


def _queue_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pool_id", sa.String(36), nullable=True),
        sa.Column("material", sa.String(40), nullable=True),
        sa.Column("nozzle_um", sa.Integer(), nullable=True),
        sa.Column("wait", sa.String(40), nullable=True),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("copy_index", sa.Integer(), nullable=True),
        sa.Column("copies", sa.Integer(), nullable=True),
    ]


_QUEUE_COLUMNS = tuple(column.name for column in _queue_columns())


def _jobs(*, with_queue: bool) -> sa.Table:
    """``jobs`` as revision 0003 left it (or this one makes it): what SQLite's batch mode copies
    the table from when it rebuilds it, with no database to reflect in ``--sql`` mode."""
    queue: list[sa.Column[object] | sa.ForeignKeyConstraint | sa.Index] = []
    if with_queue:
        queue = [
            *_queue_columns(),
            sa.ForeignKeyConstraint(
                ["pool_id"], ["pools.id"], name="fk_jobs_pool_id_pools", ondelete="SET NULL"
            ),
            sa.Index("ix_jobs_pool_id", "pool_id"),
            sa.Index("ix_jobs_batch_id", "batch_id"),
        ]
    return sa.Table(
        "jobs",
        sa.MetaData(),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("start_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                *_JOB_STATES,
                name="job_state",
                native_enum=False,
                create_constraint=True,
                length=max(len(value) for value in _JOB_STATES),
            ),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("printer_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(40), nullable=True),
        sa.Column("assigned_printer", sa.String(64), nullable=True),
        sa.Column("stage_sent_at", sa.BigInteger(), nullable=True),
        sa.Column("stage_command_id", sa.String(36), nullable=True),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("not_after", sa.BigInteger(), nullable=True),
        sa.Column("last_query_at", sa.BigInteger(), nullable=True),
        sa.Column("query_id", sa.String(36), nullable=True),
        sa.Column("cancel_sent_at", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("file_id", sa.String(36), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("notify_completion", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *queue,
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
        sa.Index("ix_jobs_state_ended_at", "state", "ended_at"),
        sa.Index("ix_jobs_assigned_printer", "assigned_printer"),
        sa.Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
    )


def upgrade() -> None:
    """Create ``pools`` and ``pool_printers``; add the queue's columns to ``jobs``."""
    op.create_table(
        "pools",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pools"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_pools_owner_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("owner_id", "name", name="uq_pools_owner_id_name"),
    )
    op.create_table(
        "pool_printers",
        sa.Column("pool_id", sa.String(36), nullable=False),
        sa.Column("printer_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("pool_id", "printer_id", name="pk_pool_printers"),
        sa.ForeignKeyConstraint(
            ["pool_id"], ["pools.id"], name="fk_pool_printers_pool_id_pools", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["printer_id"],
            ["printers.id"],
            name="fk_pool_printers_printer_id_printers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_pool_printers_printer_id", "pool_printers", ["printer_id"])
    with (
        _keeping_alert_links(),
        op.batch_alter_table("jobs", copy_from=_jobs(with_queue=False)) as batch,
    ):
        for column in _queue_columns():
            batch.add_column(column)
        batch.create_foreign_key(
            "fk_jobs_pool_id_pools", "pools", ["pool_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_jobs_pool_id", ["pool_id"])
        batch.create_index("ix_jobs_batch_id", ["batch_id"])


def downgrade() -> None:
    """Drop the queue's columns from ``jobs``, then ``pool_printers`` and ``pools``."""
    with (
        _keeping_alert_links(),
        op.batch_alter_table("jobs", copy_from=_jobs(with_queue=True)) as batch,
    ):
        batch.drop_index("ix_jobs_batch_id")
        batch.drop_index("ix_jobs_pool_id")
        batch.drop_constraint("fk_jobs_pool_id_pools", type_="foreignkey")
        for column in _QUEUE_COLUMNS:
            batch.drop_column(column)
    op.drop_index("ix_pool_printers_printer_id", table_name="pool_printers")
    op.drop_table("pool_printers")
    op.drop_table("pools")


class _keeping_alert_links:  # noqa: N801 - used as a context manager, named like one
    # SQLite rebuilds ``jobs`` to change a foreign key, and dropping the old table sets null
    # the job of every alert (ON DELETE SET NULL; the store keeps foreign keys on, and that
    # cannot change inside the migration's transaction): remember the links, put them back.
    # Plain SQL, so that ``--sql`` output does it too.

    def __enter__(self) -> None:
        if op.get_context().dialect.name == "sqlite":
            op.execute(
                "CREATE TEMP TABLE alert_jobs AS "
                "SELECT id, job_id FROM alerts WHERE job_id IS NOT NULL"
            )

    def __exit__(self, *exc: object) -> None:
        if op.get_context().dialect.name == "sqlite" and exc[0] is None:
            op.execute(
                "UPDATE alerts SET job_id = "
                "(SELECT job_id FROM alert_jobs WHERE alert_jobs.id = alerts.id) "
                "WHERE id IN (SELECT id FROM alert_jobs)"
            )
            op.execute("DROP TABLE alert_jobs")
