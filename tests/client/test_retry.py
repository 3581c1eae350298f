"""Backoff, retry budget, circuit breaker, Retry-After and the retry policy, on a fake clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.client.retry import (
    Backoff,
    BreakerState,
    CircuitBreaker,
    RetryBudget,
    RetryPolicy,
    parse_retry_after,
)


class FakeClock:
    """Seconds, moved by hand."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> BreakerState:
    # A call, so mypy does not narrow the property across the clock moving.
    return breaker.state


# --- Backoff ---------------------------------------------------------------------------------


@given(
    base=st.floats(0.001, 5),
    cap=st.floats(0.001, 60),
    retry=st.integers(0, 10_000),
    seed=st.integers(0, 2**32),
)
def test_backoff_waits_within_full_jitter_bounds(
    base: float, cap: float, retry: int, seed: int
) -> None:
    backoff = Backoff(base=base, cap=cap, rng=random.Random(seed))
    ceiling = min(cap, base * 2.0 ** min(retry, 64))
    assert backoff.ceiling(retry) == pytest.approx(ceiling)
    assert 0 <= backoff.delay(retry) <= ceiling


def test_backoff_ceiling_doubles_until_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=3.0)
    assert [backoff.ceiling(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_is_jittered_over_the_whole_range() -> None:
    # Full jitter: the waits of many clients spread over [0, ceiling], not bunched at its top.
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    waits = [backoff.delay(3) for _ in range(2_000)]
    assert min(waits) < 0.5
    assert max(waits) > 7.5
    assert 3.6 < sum(waits) / len(waits) < 4.4


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (1, 0), (-1, 1)])
def test_backoff_rejects_non_positive_bounds(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Backoff(base=base, cap=cap)


def test_backoff_rejects_a_negative_retry_number() -> None:
    with pytest.raises(ValueError, match="retry number"):
        Backoff().delay(-1)


# --- RetryBudget -----------------------------------------------------------------------------


def test_budget_keeps_retries_within_ten_percent_under_sustained_failure() -> None:
    budget = RetryBudget(ratio=0.1, max_tokens=10)
    requests = retries = 0
    for _ in range(10_000):
        # Every request fails; the client asks for a retry after each failed attempt.
        requests += 1
        budget.deposit()
        while budget.try_withdraw():
            retries += 1
            break
    assert retries <= 0.1 * requests + 10
    assert retries >= 0.1 * requests - 1  # and it does retry, as far as the budget allows


@given(
    outcomes=st.lists(st.booleans(), max_size=500),
    ratio=st.floats(0, 1),
    max_tokens=st.floats(1, 50),
)
def test_budget_bound_holds_for_any_request_pattern(
    outcomes: list[bool], ratio: float, max_tokens: float
) -> None:
    budget = RetryBudget(ratio=ratio, max_tokens=max_tokens)
    retries = 0
    for wants_retry in outcomes:
        budget.deposit()
        if wants_retry and budget.try_withdraw():
            retries += 1
        assert 0 <= budget.tokens <= max_tokens
    assert retries <= max_tokens + ratio * len(outcomes) + 1e-9


def test_budget_refuses_without_taking_when_spent() -> None:
    budget = RetryBudget(ratio=0.5, max_tokens=1)
    assert budget.try_withdraw()
    assert not budget.try_withdraw()
    assert budget.tokens == 0
    budget.deposit()
    assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()


@pytest.mark.parametrize(("ratio", "max_tokens"), [(-0.1, 10), (1.5, 10), (0.1, 0.5)])
def test_budget_rejects_bad_settings(ratio: float, max_tokens: float) -> None:
    with pytest.raises(ValueError, match="retry budget"):
        RetryBudget(ratio=ratio, max_tokens=max_tokens)


# --- CircuitBreaker --------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5.0)

    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_breaker_failed_probe_reopens_for_a_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=2.0, clock=clock)
    breaker.record_failure()
    clock.advance(2.0)
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    clock.advance(1.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_breaker_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=1.0, clock=FakeClock())
    for _ in range(10):
        breaker.record_failure()
        breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED


def test_breaker_probe_that_never_reports_does_not_wedge_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=3.0, clock=clock)
    breaker.record_failure()
    clock.advance(3.0)
    assert breaker.allow()  # the probe's caller is then cancelled and never reports
    clock.advance(2.9)
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.allow()


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, 0.0)])
def test_breaker_rejects_bad_settings(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failure_threshold=threshold, cooldown=cooldown)


# --- Retry-After -----------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("3", 3.0),
        (" 120 ", 120.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),  # already past: now
        ("Thu, 01 Jan 2026 12:00:05 -0000", 5.0),
        (None, None),
        ("", None),
        ("-3", None),
        ("1.5", None),
        ("soon", None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive; UTC below
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    )
)
def test_retry_after_http_date_round_trips(when: datetime) -> None:
    moment = when.replace(tzinfo=UTC, microsecond=0)
    header = format_datetime(moment, usegmt=True)
    assert parse_retry_after(header, now=NOW) == max(0.0, moment.timestamp() - NOW)


@given(st.text(max_size=40))
def test_retry_after_never_raises_on_garbage(header: str) -> None:
    result = parse_retry_after(header, now=NOW)
    assert result is None or result >= 0


# --- RetryPolicy / RetryCall -----------------------------------------------------------------


def _policy(clock: FakeClock, **settings: object) -> RetryPolicy:
    return RetryPolicy(
        backoff=Backoff(base=1.0, cap=4.0, rng=random.Random(1)),
        breaker=CircuitBreaker(failure_threshold=100, cooldown=5.0, clock=clock),
        wall_clock=lambda: NOW,
        **settings,  # type: ignore[arg-type]
    )


def test_policy_resends_only_idempotent_methods_or_keyed_requests() -> None:
    assert RetryPolicy.may_resend("GET", {})
    assert RetryPolicy.may_resend("delete", {})
    assert not RetryPolicy.may_resend("POST", {})
    assert RetryPolicy.may_resend("POST", {"idempotency-key": "k1"})
    assert not RetryPolicy.may_resend("PATCH", {"X-Other": "1"})


def test_call_retries_503_after_the_servers_wait() -> None:
    call = _policy(FakeClock()).start("GET", {})
    assert call.admit()
    wait = call.after_response(503, "2")
    assert wait is not None
    assert 2.0 <= wait <= 2.0 + 0.1 * 1.0  # the server's wait plus a tenth of the jitter
    assert call.admit()
    assert call.after_response(200) is None


def test_call_never_resends_a_post_without_its_key() -> None:
    call = _policy(FakeClock()).start("POST", {})
    assert call.admit()
    assert call.after_response(503, "1") is None
    assert call.gave_up_reason == "the request is not safe to send twice"
    call = _policy(FakeClock()).start("POST", {})
    assert call.admit()
    assert call.after_transport_error() is None


def test_call_stops_at_max_attempts() -> None:
    call = _policy(FakeClock(), max_attempts=3).start("GET", {})
    waits = []
    while call.admit():
        wait = call.after_transport_error()
        if wait is None:
            break
        waits.append(wait)
    assert call.attempts == 3
    assert len(waits) == 2
    assert call.gave_up_reason == "gave up after 3 attempts"


def test_call_does_not_wait_longer_than_the_policy_allows() -> None:
    call = _policy(FakeClock(), max_retry_after=10.0).start("GET", {})
    assert call.admit()
    assert call.after_response(429, "60") is None
    assert call.gave_up_reason == "the server asked for a wait of 60 s"


def test_call_gives_up_when_the_budget_is_spent() -> None:
    policy = _policy(FakeClock(), budget=RetryBudget(ratio=0.1, max_tokens=1))
    first = policy.start("GET", {})
    assert first.admit()
    assert first.after_transport_error() is not None
    second = policy.start("GET", {})
    assert second.admit()
    assert second.after_transport_error() is None
    assert second.gave_up_reason == "the retry budget is spent"


@pytest.mark.parametrize("status", [200, 201, 204, 400, 401, 403, 404, 409, 422, 500])
def test_call_does_not_retry_answers_that_will_not_change(status: int) -> None:
    call = _policy(FakeClock()).start("GET", {})
    assert call.admit()
    assert call.after_response(status, "1") is None


def test_server_failures_open_the_shared_breaker_but_429_does_not() -> None:
    clock = FakeClock()
    policy = _policy(clock, max_attempts=1)
    policy.breaker = CircuitBreaker(failure_threshold=2, cooldown=5.0, clock=clock)
    for _ in range(5):
        call = policy.start("GET", {})
        assert call.admit()
        call.after_response(429, "1")
    assert state(policy.breaker) is BreakerState.CLOSED
    for _ in range(2):
        call = policy.start("GET", {})
        assert call.admit()
        call.after_response(503, "1")
    assert not policy.start("GET", {}).admit()


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
