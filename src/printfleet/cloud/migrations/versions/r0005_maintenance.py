"""Maintenance counters: ``printer_maintenance``, one row per printer and part serviced or given
an interval of its own.

Revision ID: r0005
Revises: r0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0005"
down_revision: str | Sequence[str] | None = "r0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``printer_maintenance``; no part of any printer has been serviced yet."""
    op.create_table(
        "printer_maintenance",
        sa.Column("printer_id", sa.String(64), nullable=False),
        sa.Column("part", sa.String(16), nullable=False),
        sa.Column("interval_h", sa.Double(), nullable=True),
        sa.Column("serviced_at", sa.BigInteger(), nullable=True),
        sa.Column("hours_at_service", sa.Double(), nullable=False),
        sa.Column("alerted_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("printer_id", "part", name="pk_printer_maintenance"),
        sa.ForeignKeyConstraint(
            ["printer_id"],
            ["printers.id"],
            name="fk_printer_maintenance_printer_id_printers",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    """Drop ``printer_maintenance`` and every service record in it."""
    op.drop_table("printer_maintenance")
