"""Alerts that clear by themselves: ``alerts.resolved_at`` and ``alerts.resolution``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Before this revision a cleared alert (a printer back online) was acknowledged with
``acked_by`` null. Those rows are left as they are: a person's acknowledgement also has
``acked_by`` null once that person's account is deleted, so the two cannot be told apart.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``alerts.resolved_at`` and ``alerts.resolution``, null on existing alerts."""
    op.add_column("alerts", sa.Column("resolved_at", sa.BigInteger(), nullable=True))
    op.add_column("alerts", sa.Column("resolution", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``alerts.resolved_at`` and ``alerts.resolution``."""
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("resolution")
        batch.drop_column("resolved_at")
