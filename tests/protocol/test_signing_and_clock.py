"""Signatures bind every field; clock bounds always contain the true offset."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printfleet.protocol.clock import ClockOffsetEstimator
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.signing import CommandSigner, CommandVerifier

JOB = "00000000-0000-0000-0000-0000000000aa"
SHA = "ab" * 32


def test_a_signed_command_verifies(signer: CommandSigner, issuer: CommandIssuer) -> None:
    command = issuer.start("p1", JOB, now=10, not_after=20, sha256=SHA, name="a")
    assert CommandVerifier(signer.public_key).verify(command)


@pytest.mark.parametrize(
    "change",
    [
        {"not_after": 10_000_000},
        {"printer_id": "p2"},
        {"job_id": "00000000-0000-0000-0000-0000000000bb"},
        {"issued_at": 11},
        {"sig": ""},
        {"sig": "not base64!"},
        {"sig": "padding=="},
    ],
)
def test_any_change_breaks_the_signature(
    signer: CommandSigner, issuer: CommandIssuer, change: dict[str, object]
) -> None:
    command = issuer.start("p1", JOB, now=10, not_after=20, sha256=SHA, name="a")
    assert not CommandVerifier(signer.public_key).verify(command.model_copy(update=change))


def test_another_key_does_not_verify(issuer: CommandIssuer) -> None:
    command = issuer.cancel("p1", JOB, now=10)
    assert not CommandVerifier(CommandSigner.generate().public_key).verify(command)


def test_keys_survive_a_save_and_load(signer: CommandSigner) -> None:
    again = CommandSigner.from_private_bytes(signer.private_bytes())
    assert again.public_key == signer.public_key


def test_a_garbled_public_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        CommandVerifier("short")


def test_no_estimate_before_a_round_trip() -> None:
    assert ClockOffsetEstimator().estimate(5) is None


def test_unusable_round_trips_are_ignored() -> None:
    estimator = ClockOffsetEstimator(max_rtt_ms=1_000)
    assert not estimator.add_round_trip(100, 5_000, 50)  # received before sent
    assert not estimator.add_round_trip(0, 5_000, 2_000)  # too slow to be useful
    assert estimator.estimate(2_000) is None


def test_the_bound_widens_with_age_at_the_drift_rate() -> None:
    estimator = ClockOffsetEstimator(drift_ppm=200)
    assert estimator.add_round_trip(0, 1_000_010, 20)
    fresh = estimator.estimate(20)
    later = estimator.estimate(20 + 3_600_000)
    assert fresh is not None
    assert later is not None
    assert fresh.bound == 11
    assert later.bound == 11 + 720  # 200 ppm of an hour
    assert fresh.offset == later.offset == 1_000_000


def test_the_tightest_sample_wins() -> None:
    estimator = ClockOffsetEstimator()
    estimator.add_round_trip(0, 500, 1_000)
    estimator.add_round_trip(2_000, 2_010, 2_020)
    estimate = estimator.estimate(2_020)
    assert estimate is not None
    assert estimate.bound == 11


@given(
    offset=st.integers(-(10**12), 10**12),
    send=st.integers(0, 10**9),
    rtt=st.integers(0, 3_000),
    reply_at=st.floats(0, 1),
    drift_ppm=st.integers(-199, 199),
    wait=st.integers(0, 7_200_000),
)
def test_the_true_cloud_time_is_always_inside_the_interval(
    *, offset: int, send: int, rtt: int, reply_at: float, drift_ppm: int, wait: int
) -> None:
    """Whatever the delays, the true cloud time lies within the estimate's bound."""

    # Cloud time runs at (1 + drift) relative to the printer's clock.
    def cloud_at(local: int) -> int:
        return offset + local + (local - send) * drift_ppm // 1_000_000

    estimator = ClockOffsetEstimator(drift_ppm=200)
    answered_local = send + round(rtt * reply_at)
    assert estimator.add_round_trip(send, cloud_at(answered_local), send + rtt)
    now = send + rtt + wait
    estimate = estimator.estimate(now)
    assert estimate is not None
    interval = estimate.cloud_time(now)
    assert interval.earliest <= cloud_at(now) <= interval.latest


def test_a_signature_in_another_base64_dialect_is_refused(
    signer: CommandSigner, issuer: CommandIssuer
) -> None:
    """One encoding only: standard base64 or padding must not verify."""
    command = issuer.cancel("p1", JOB, now=10)
    verifier = CommandVerifier(signer.public_key)
    assert verifier.verify(command)
    padded = command.model_copy(update={"sig": command.sig + "=="})
    assert not verifier.verify(padded)


def test_a_signature_has_exactly_one_spelling(signer: CommandSigner, issuer: CommandIssuer) -> None:
    """Base64's unused trailing bits must be zero: no second string verifies the same bytes."""
    command = issuer.cancel("p1", JOB, now=10)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(command.sig[-1])
    twin = alphabet[last | 0b0001]  # same top bits, a trailing bit set
    assert twin != command.sig[-1]
    respelled = command.model_copy(update={"sig": command.sig[:-1] + twin})
    assert not CommandVerifier(signer.public_key).verify(respelled)
