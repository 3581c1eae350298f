"""The store's schema migrations (Alembic), shipped in the package so the cloud can bring its
database up to date on start: ``await upgrade(url, secrets=box)``, where ``box`` is the data
directory's :class:`~printfleet.cloud.store.sealing.SecretBox` (revision 0002 seals existing
secrets with it; an empty database needs none).

Works on SQLite and PostgreSQL through the same async drivers as the store. Replicas starting
together take turns (an advisory lock on PostgreSQL, the write lock on SQLite), so each finds
the schema either untouched or complete. To write the next revision, against a database at
head: ``alembic.command.revision(alembic_config(url), "what changed", autogenerate=True,
rev_id="0002")``, then read and trim what it wrote; SQLite gets batch operations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from printfleet.cloud.store.engine import create_engine, database_url
from printfleet.cloud.store.sealing import SecretBox

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "upgrade"]

# Alembic's ``context`` is a module-level proxy: two commands at once in one process would
# clobber each other's. Across processes the database lock in env.py takes over.
_ONE_COMMAND_AT_A_TIME = threading.Lock()

URL_ATTRIBUTE = "printfleet.url"
"""Where ``alembic_config`` puts the database URL for ``env.py`` (``Config.attributes``, which,
unlike the ini options, does not treat ``%`` in a password as interpolation)."""
SECRETS_ATTRIBUTE = "printfleet.secrets"
"""Where ``alembic_config`` puts the :class:`SecretBox` for revisions that seal or open secrets."""


def alembic_config(url: str, *, secrets: SecretBox | None = None) -> Config:
    """An Alembic configuration for the store's migrations against ``url``; no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    # Revision files are named r<id>_<slug>.py: a module name may not start with a digit.
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    config.attributes[URL_ATTRIBUTE] = database_url(url)
    if secrets is not None:
        config.attributes[SECRETS_ATTRIBUTE] = secrets
    return config


async def upgrade(url: str, revision: str = "head", *, secrets: SecretBox | None = None) -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest), sealing
    existing secrets with ``secrets``."""
    # Alembic is synchronous and reads its scripts from disk; a worker thread keeps both off
    # the caller's event loop, and env.py runs its own loop there for the async driver.
    config = alembic_config(url, secrets=secrets)
    await asyncio.to_thread(_run, command.upgrade, config, revision)


async def downgrade(url: str, revision: str, *, secrets: SecretBox | None = None) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"``: drop everything)."""
    config = alembic_config(url, secrets=secrets)
    await asyncio.to_thread(_run, command.downgrade, config, revision)


def _run(alembic_command: Callable[[Config, str], None], config: Config, revision: str) -> None:
    with _ONE_COMMAND_AT_A_TIME:
        alembic_command(config, revision)


def head_revision() -> str:
    """The newest revision shipped with this version of printfleet."""
    head = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_current_head()
    assert head is not None  # noqa: S101 - the package ships at least one revision
    return head


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None if it was never migrated."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
