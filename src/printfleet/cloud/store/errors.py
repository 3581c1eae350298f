"""What can go wrong in the store, as exception types the API maps to statuses.

Callers never see a driver's exception for a busy or unreachable database: the pool timing
out, SQLite's lock, a refused connection each become one of these, so the API has one place
to turn them into 503 and the dispatcher one thing to back off on.
"""

from sqlalchemy import exc

# The names below are the store's contract with the API (503, 409, 404, ...), and they name
# conditions rather than bugs, hence no "Error" suffix (pep8-naming's N818).


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class StoreBusy(StoreError):  # noqa: N818 - see above
    """No connection or lock could be had in time: the database is overloaded. Retry later (503)."""


class StoreUnavailable(StoreError):  # noqa: N818 - see above
    """The database cannot be reached or dropped the connection (503)."""


class NotFound(StoreError):  # noqa: N818 - see above
    """No row has that id (404)."""


class AlreadyExists(StoreError):  # noqa: N818 - see above
    """A row with that unique value (an e-mail, a printer id, a broker user) exists (409)."""


class Conflict(StoreError):  # noqa: N818 - see above
    """Someone else changed the job since it was read: reload it and decide again (409).

    This is how dispatch ownership works across replicas: the replica whose write lands first
    owns the decision; every other one gets this and must not act on its stale plan.
    """

    def __init__(self, job_id: str, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"job {job_id} is at version {actual_version}, not {expected_version}: "
            "it was changed concurrently"
        )
        self.job_id = job_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class StateConflict(Conflict):
    """What the row is in forbids the change (409): a pool that open jobs still target, a job
    that is no longer waiting."""

    def __init__(self, message: str) -> None:
        StoreError.__init__(self, message)


class IdempotencyMismatch(StoreError):  # noqa: N818 - see above
    """An idempotency key was reused for a different request (422, as payment APIs do)."""


def connect_failure(error: Exception, url: str) -> StoreError:
    """What failing to get a connection (and BEGIN) to the database at ``url`` means."""
    if isinstance(error, exc.TimeoutError):
        # QueuePool found no free connection within pool_timeout.
        return StoreBusy(f"no database connection free in time ({url})")
    if isinstance(error, exc.DBAPIError):
        return statement_failure(error, url) or StoreUnavailable(
            f"database {url} is unavailable: {_first_line(error)}"
        )
    # A refused or timed-out connect arrives as the driver's own error (OSError,
    # TimeoutError, asyncpg's), not wrapped by SQLAlchemy.
    return StoreUnavailable(f"database {url} is unavailable: {error!r}")


def statement_failure(error: Exception, url: str) -> StoreError | None:
    """What a failed statement means, or None for an error that is a bug (raised as it is)."""
    if not isinstance(error, exc.DBAPIError):
        return None
    if _sqlite_error(error).startswith("SQLITE_BUSY"):
        # The busy timeout ran out waiting for another writer (BEGIN IMMEDIATE waits here).
        return StoreBusy(f"database is locked by another writer ({url})")
    if isinstance(error, exc.IntegrityError):
        return _integrity_error(error)
    if error.connection_invalidated:
        return StoreUnavailable(f"database {url} went away: {_first_line(error)}")
    return None


def _sqlite_error(error: exc.DBAPIError) -> str:
    # sqlite3 names the error (SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE, ...) since Python 3.11.
    return str(getattr(error.orig, "sqlite_errorname", ""))


def _integrity_error(error: exc.IntegrityError) -> StoreError:
    name = _sqlite_error(error)
    code = str(getattr(error.orig, "sqlstate", "") or getattr(error.orig, "pgcode", ""))
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY" or code == "23503":
        # Callers see these words; the driver's, naming tables and columns, stay in the
        # exception's cause, for the log.
        return NotFound("it refers to something that does not exist")
    if name in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"} or code == "23505":
        return AlreadyExists("it already exists")
    return StoreError(f"constraint violated: {_first_line(error)}")


def _first_line(error: exc.DBAPIError) -> str:
    # The driver's message without SQLAlchemy's statement echo, and only its first line:
    # PostgreSQL's DETAIL line quotes the offending values, which may be personal data.
    return str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else repr(error)
