"""How a printer knows cloud time well enough to judge a deadline, and how well it knows it.

A printer times round trips on its own monotonic clock (which wall-clock steps cannot move)
and asks the cloud for its time. One round trip bounds the offset by half its duration; the
bound then widens with the time since, at the worst drift a crystal is allowed. A deadline is
met only if it is met at the *upper* end of the interval in which cloud time must lie.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CloudTimeInterval:
    """Cloud time now lies within ``[earliest, latest]`` (milliseconds)."""

    earliest: int
    latest: int

    @property
    def midpoint(self) -> int:
        """The best single estimate."""
        return (self.earliest + self.latest) // 2


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """``cloud = local + offset``, within ``± bound`` milliseconds, as of ``as_of_local``."""

    offset: int
    bound: int
    as_of_local: int

    def cloud_time(self, now_local: int) -> CloudTimeInterval:
        """The interval that holds cloud time at local monotonic time ``now_local``."""
        centre = now_local + self.offset
        return CloudTimeInterval(centre - self.bound, centre + self.bound)

    def to_local(self, cloud_ms: int) -> tuple[int, int]:
        """The local-time interval in which cloud time ``cloud_ms`` may have occurred."""
        return cloud_ms - self.offset - self.bound, cloud_ms - self.offset + self.bound


@dataclass(frozen=True, slots=True)
class _Sample:
    offset: int
    half_rtt: int
    received_local: int


class ClockOffsetEstimator:
    """Keeps recent timed round trips and yields the tightest honest offset estimate.

    ``drift_ppm`` is the worst rate at which the local and cloud clocks may run apart; 200 ppm
    is far beyond a quartz crystal's tolerance plus NTP slewing, so the bound stays honest.
    """

    def __init__(
        self, *, drift_ppm: int = 200, max_rtt_ms: int = 4_000, max_samples: int = 8
    ) -> None:
        self._drift_ppm = drift_ppm
        self._max_rtt = max_rtt_ms
        self._max_samples = max_samples
        self._samples: list[_Sample] = []

    def add_round_trip(self, sent_local: int, cloud_time: int, received_local: int) -> bool:
        """Record one round trip; returns False (and learns nothing) if it is unusable.

        ``cloud_time`` was read by the cloud somewhere between the printer's send and receive,
        so the offset lies within half the round trip of the midpoint assumption.
        """
        rtt = received_local - sent_local
        if rtt < 0 or rtt > self._max_rtt:
            return False
        half = (rtt + 1) // 2
        offset = cloud_time - (sent_local + received_local) // 2
        self._samples.append(_Sample(offset, half + 1, received_local))
        if len(self._samples) > self._max_samples:
            del self._samples[0]
        return True

    def reset(self) -> None:
        """Forget everything (after a restart nothing is known)."""
        self._samples.clear()

    def estimate(self, now_local: int) -> ClockEstimate | None:
        """The tightest estimate any sample gives now, or None before the first round trip."""
        best: ClockEstimate | None = None
        for sample in self._samples:
            age = max(0, now_local - sample.received_local)
            # Round the drift allowance up: an under-estimated bound would make a late command
            # look fresh.
            bound = sample.half_rtt + (age * self._drift_ppm + 999_999) // 1_000_000
            if best is None or bound < best.bound:
                best = ClockEstimate(sample.offset, bound, now_local)
        return best
