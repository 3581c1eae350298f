"""Login backoff's rules on a hand-moved clock: free failures, doubling waits up to a bound,
tries racing in parallel, tries given back, failures forgotten, memory bounded."""

from __future__ import annotations

import pytest

from printfleet.cloud.login_backoff import BackoffPolicy, LoginBackoff, LoginTry


class FakeClock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backoff(**policy: int | float) -> tuple[LoginBackoff, FakeClock]:
    clock = FakeClock()
    return LoginBackoff(BackoffPolicy(**policy), clock=clock), clock  # type: ignore[arg-type]


def admitted(attempt: LoginTry) -> LoginTry:
    assert attempt.wait_s is None, attempt
    return attempt


def test_the_wait_doubles_after_the_free_failures_up_to_the_bound() -> None:
    policy = BackoffPolicy(free_failures=2, first_delay_s=1, max_delay_s=10)
    assert [policy.delay_s(n) for n in range(8)] == [0, 0, 1, 2, 4, 8, 10, 10]
    assert policy.delay_s(10_000) == 10


def test_tries_racing_in_parallel_are_counted_as_they_start() -> None:
    logins, _ = backoff(free_failures=3)
    # Three tries still checking their passwords: the fourth may not start a fourth check.
    for _ in range(3):
        admitted(logins.begin("ada@example.org", "10.0.0.1"))
    assert logins.begin("ada@example.org", "10.0.0.2").wait_s == 1
    assert logins.refused == 1


def test_a_right_password_clears_the_account_and_gives_the_address_its_try_back() -> None:
    logins, _ = backoff(free_failures=2)
    admitted(logins.begin("ada@example.org", "10.0.0.1"))  # a wrong password
    logins.succeeded(admitted(logins.begin("ADA@example.org ", "10.0.0.9")))
    # The account starts afresh: two more failures before it waits.
    admitted(logins.begin("ada@example.org", "10.0.0.2"))
    admitted(logins.begin("ada@example.org", "10.0.0.3"))
    assert logins.begin("ada@example.org", "10.0.0.4").wait_s == 1
    # The address that failed still counts its failure; the one that succeeded does not.
    admitted(logins.begin("bob@example.org", "10.0.0.1"))
    assert logins.begin("carol@example.org", "10.0.0.1").wait_s == 1
    admitted(logins.begin("bob@example.org", "10.0.0.9"))


def test_a_try_the_server_could_not_answer_costs_nothing() -> None:
    logins, _ = backoff(free_failures=1)
    for _ in range(3):
        logins.abandoned(admitted(logins.begin("ada@example.org", "10.0.0.1")))


def test_failures_are_forgotten_after_a_quiet_while_and_memory_is_bounded() -> None:
    logins, clock = backoff(free_failures=1, max_delay_s=60, forget_after_s=900, max_keys=2)
    admitted(logins.begin("ada@example.org", "10.0.0.1"))
    clock.now += 61
    admitted(logins.begin("ada@example.org", "10.0.0.1"))  # waited out; now 2 failures
    assert logins.begin("ada@example.org", "10.0.0.1").wait_s == 2
    clock.now += 901
    admitted(logins.begin("ada@example.org", "10.0.0.1"))
    assert logins.begin("ada@example.org", "10.0.0.1").wait_s == 1  # counted from one again
    # Two more accounts and addresses push Ada's records out: at most max_keys of each.
    for n in (2, 3):
        admitted(logins.begin(f"user{n}@example.org", f"10.0.0.{n}"))
    admitted(logins.begin("ada@example.org", "10.0.0.1"))


def test_nonsense_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="free_failures"):
        BackoffPolicy(free_failures=0)
    with pytest.raises(ValueError, match="first_delay_s"):
        BackoffPolicy(first_delay_s=10, max_delay_s=5)
    with pytest.raises(ValueError, match="forget_after_s"):
        BackoffPolicy(max_delay_s=600, forget_after_s=60)
