"""The printer's journal on disk: an append-only SQLite table, written ahead of every action.

Each append is its own committed transaction with ``synchronous=FULL``, so a record the agent
has acted on survives power loss. The connection is opened per append: commands are rare, and a
fleet simulator running a thousand printers should not hold a thousand open databases.
"""

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from printfleet.protocol.journal import Journal, JournalRecord

_SCHEMA = "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)"


class JournalFile:
    """One printer's durable journal."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(_SCHEMA)
        return connection

    def load(self) -> list[JournalRecord]:
        """Every record, oldest first. A line that does not parse is a corrupt file: raise."""
        connection = self._connect()
        try:
            rows = connection.execute("SELECT record FROM journal ORDER BY seq").fetchall()
        finally:
            connection.close()
        return [JournalRecord.model_validate_json(row[0]) for row in rows]

    def append(self, records: Iterable[JournalRecord]) -> None:
        """Store ``records`` durably; returns only once they are on disk."""
        lines = [(record.encode().decode(),) for record in records]
        if not lines:
            return
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT INTO journal (record) VALUES (?)", lines)
            connection.execute("COMMIT")
        finally:
            connection.close()

    def compact(self, journal: Journal) -> None:
        """Replace the file's contents with the records that rebuild ``journal``."""
        lines = [(record.encode().decode(),) for record in journal.live_records()]
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("DELETE FROM journal")
            connection.executemany("INSERT INTO journal (record) VALUES (?)", lines)
            connection.execute("COMMIT")
        finally:
            connection.close()
