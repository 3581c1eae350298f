"""Secrets at rest and expiring tokens: notification channels' targets and secrets sealed with
the data directory's key, and an expiry on every API token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Existing tokens expire ``EXISTING_TOKEN_LIFETIME_MS`` after the upgrade (30 days, the default
lifetime of a new token), so nobody is logged out by the upgrade itself. Existing channels are
sealed with the key ``upgrade(url, secrets=...)`` passes (the cloud passes its own on start);
without one, a database that holds channels is refused rather than left in plain text. Offline
(``--sql``) the rows cannot be read, so the script only changes the schema, and the cloud seals
the rows when it next starts.
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from printfleet.cloud.migrations import SECRETS_ATTRIBUTE
from printfleet.cloud.store.sealing import SecretBox, is_sealed, seal_context

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXISTING_TOKEN_LIFETIME_MS = 30 * 24 * 3_600_000

_TOKENS = sa.table("api_tokens", sa.column("expires_at", sa.BigInteger()))
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _tokens_with_expiry(*, nullable: bool) -> sa.Table:
    """``api_tokens`` as revision 0001 made it, plus ``expires_at``: what SQLite's batch mode
    copies the table from when it rebuilds it, with no database to reflect in ``--sql`` mode."""
    return sa.Table(
        "api_tokens",
        sa.MetaData(),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", _JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=nullable),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
        sa.Index("ix_api_tokens_user_id", "user_id"),
    )


_CHANNELS = sa.table(
    "notification_channels",
    sa.column("id", sa.String()),
    sa.column("target", sa.Text()),
    sa.column("secret", sa.Text()),
)


def upgrade() -> None:
    """Add ``api_tokens.expires_at`` (existing tokens: 30 days from now); seal channels."""
    op.add_column("api_tokens", sa.Column("expires_at", sa.BigInteger(), nullable=True))
    expires_at = time.time_ns() // 1_000_000 + EXISTING_TOKEN_LIFETIME_MS
    op.execute(_TOKENS.update().values(expires_at=expires_at))
    with op.batch_alter_table("api_tokens", copy_from=_tokens_with_expiry(nullable=True)) as batch:
        batch.alter_column("expires_at", existing_type=sa.BigInteger(), nullable=False)
    if not context.is_offline_mode():
        _rewrite_channels(seal=True)


def downgrade() -> None:
    """Open the channels' sealed values again, and drop ``api_tokens.expires_at``."""
    if not context.is_offline_mode():
        _rewrite_channels(seal=False)
    with op.batch_alter_table("api_tokens", copy_from=_tokens_with_expiry(nullable=False)) as batch:
        batch.drop_column("expires_at")


def _rewrite_channels(*, seal: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_CHANNELS.c.id, _CHANNELS.c.target, _CHANNELS.c.secret)
    ).all()
    to_change = [
        row
        for row in rows
        if any(value is not None and is_sealed(value) != seal for value in (row[1], row[2]))
    ]
    if not to_change:
        return
    box: SecretBox | None = context.config.attributes.get(SECRETS_ATTRIBUTE)
    if box is None:
        msg = (
            f"{len(to_change)} notification channels hold secrets this migration must "
            f"{'seal' if seal else 'open'}, which needs the data directory's secrets key: "
            "let `printfleet serve` migrate, or pass upgrade(url, secrets=...)"
        )
        raise RuntimeError(msg)
    if connection.dialect.name == "sqlite":
        # The rows' old plain text is freed by the update below; zeroed, it does not linger
        # in the file's free space.
        connection.exec_driver_sql("PRAGMA secure_delete = ON")
    for channel_id, target, secret in to_change:
        values = {
            "target": _convert(box, target, "target", channel_id, seal=seal),
            "secret": None
            if secret is None
            else _convert(box, secret, "secret", channel_id, seal=seal),
        }
        connection.execute(_CHANNELS.update().where(_CHANNELS.c.id == channel_id).values(values))


def _convert(box: SecretBox, value: str, column: str, channel_id: str, *, seal: bool) -> str:
    where = seal_context("notification_channels", column, channel_id)
    if seal:
        return value if is_sealed(value) else box.seal(value, context=where)
    return box.open(value, context=where)
