"""What can go wrong in the store, as exception types the API maps to statuses.

Callers never see a driver's exception for a busy or unreachable database: the pool timing
out, SQLite's lock, a refused connection each become one of these, so the API has one place
to turn them into 503 and the dispatcher one thing to back off on.
"""

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


class IdempotencyMismatch(StoreError):  # noqa: N818 - see above
    """An idempotency key was reused for a different request (422, as payment APIs do)."""
