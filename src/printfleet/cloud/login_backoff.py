"""Login backoff: how often a password may be tried for one account, and from one address.

Each wrong password costs the cloud an argon2 verification (slow on purpose, ~0.1-0.2 s of
CPU) and gives a guesser one try. After ``free_failures`` failures in a row, an account, and
separately an address, must wait before its next try: ``first_delay_s``, doubling with each
further failure up to ``max_delay_s``. A try made while waiting is answered 429 with
``Retry-After`` at once, before any password is hashed, and does not count.

A try counts as a failure from the moment it is let through, and is given back when the
password turns out right (or the server fails): requests racing in parallel are let through
one by one, so a burst cannot slip more than ``free_failures`` tries past the count. An e-mail
address without an account is counted exactly like one with, so the answers tell nothing of
which accounts exist. Pure rules over a clock, no I/O.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BackoffPolicy", "LoginBackoff", "LoginTry"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How many wrong passwords are free, and how the wait grows after them."""

    free_failures: int = 5
    """Failures in a row an account (or an address) may have before it must wait."""
    first_delay_s: float = 1.0
    """The wait after the first failure beyond the free ones; it doubles with each further one."""
    max_delay_s: float = 300.0
    """The longest wait: the most a guesser, or someone locking a person out, can impose."""
    forget_after_s: float = 900.0
    """Failures are forgotten after this long without a new one."""
    max_keys: int = 10_000
    """Accounts and addresses remembered at once (each); the least recently seen go first."""

    def __post_init__(self) -> None:
        if self.free_failures < 1:
            raise ValueError(f"free_failures must be >= 1, got {self.free_failures}")
        if not 0 < self.first_delay_s <= self.max_delay_s:
            raise ValueError("need 0 < first_delay_s <= max_delay_s")
        if self.forget_after_s < self.max_delay_s:
            raise ValueError("forget_after_s must be >= max_delay_s")
        if self.max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {self.max_keys}")

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row: none before ``free_failures``, then
        ``first_delay_s``, doubling."""
        beyond = failures - self.free_failures
        if beyond < 0:
            return 0.0
        # Capped before exponentiating, so a long run of failures cannot overflow a float.
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** min(beyond, 64))


@dataclass(slots=True)
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True, slots=True)
class LoginTry:
    """One login try, as :meth:`LoginBackoff.begin` decided it."""

    email: str
    address: str
    wait_s: int | None
    """None: the password may be checked now. Else the whole seconds to wait first."""
    locks_before: tuple[float, float] = (0.0, 0.0)
    """The account's and the address's waits before this try counted, to give back."""


@dataclass
class LoginBackoff:
    """Failed logins per account and per address; see the module's docstring."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    clock: Callable[[], float] = time.monotonic
    """Seconds (monotonic)."""
    refused: int = 0
    """Tries answered 429 without a password being checked."""
    _accounts: collections.OrderedDict[str, _Record] = field(
        default_factory=collections.OrderedDict
    )
    _addresses: collections.OrderedDict[str, _Record] = field(
        default_factory=collections.OrderedDict
    )

    def begin(self, email: str, address: str) -> LoginTry:
        """A login try for ``email`` from ``address``. Unless it must wait (``wait_s``), it
        may check the password now, and counts as a failure until :meth:`succeeded` or
        :meth:`abandoned` is told of it."""
        now = self.clock()
        account = self._record(self._accounts, _account_key(email), now)
        origin = self._record(self._addresses, address, now)
        wait = max(account.locked_until, origin.locked_until) - now
        if wait > 0:
            self.refused += 1
            return LoginTry(email, address, max(1, math.ceil(wait)))
        before = (account.locked_until, origin.locked_until)
        for record in (account, origin):
            record.failures += 1
            record.last = now
            record.locked_until = now + self.policy.delay_s(record.failures)
        return LoginTry(email, address, None, before)

    def succeeded(self, attempt: LoginTry) -> None:
        """The password was right: the account starts afresh, the address gets its try back."""
        self._accounts.pop(_account_key(attempt.email), None)
        self._give_back(self._addresses.get(attempt.address), attempt.locks_before[1])

    def abandoned(self, attempt: LoginTry) -> None:
        """The try ended without an answer on the password (the server failed): both get it
        back."""
        self._give_back(self._accounts.get(_account_key(attempt.email)), attempt.locks_before[0])
        self._give_back(self._addresses.get(attempt.address), attempt.locks_before[1])

    @staticmethod
    def _give_back(record: _Record | None, lock_before: float) -> None:
        if record is None or record.failures == 0:
            return
        record.failures -= 1
        # As it was before the try, unless a failure since has moved it: never later.
        record.locked_until = min(record.locked_until, lock_before)

    def _record(
        self, records: collections.OrderedDict[str, _Record], key: str, now: float
    ) -> _Record:
        record = records.get(key)
        if record is None or now - record.last > self.policy.forget_after_s:
            record = records[key] = _Record(last=now)
            if len(records) > self.policy.max_keys:
                records.popitem(last=False)
        records.move_to_end(key)
        return record


def _account_key(email: str) -> str:
    # The store's own normalisation, so "Ada@X" and "ada@x" share a count.
    return email.strip().lower()
