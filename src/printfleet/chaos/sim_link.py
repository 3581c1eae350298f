"""The simulated network between the cloud and the printers of :mod:`printfleet.chaos.simulation`.

It delays, drops, duplicates, reorders and holds messages, seeded, so a failing schedule replays
exactly.
"""

import heapq
import itertools
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """How the simulated network misbehaves."""

    max_delay_ms: int = 200
    drop: float = 0.0
    duplicate: float = 0.0
    near: frozenset[str] = frozenset()
    """Printers on a fast path to the broker: every message to or from them arrives at once,
    so they answer while the cloud is still publishing the command they answer."""


@dataclass(order=True, slots=True)
class _InFlight:
    deliver_at: int
    seq: int
    to: str = field(compare=False)
    printer_id: str = field(compare=False)
    payload: bytes = field(compare=False)


class SimulatedLink:
    """Carries payloads between the cloud and printers with seeded faults.

    A *held* printer models an MQTT client whose connection is down while it still accepts
    publishes: everything sent to or from that printer is kept and delivered in one burst when
    the hold ends, however late. That is exactly what printed onto occupied plates in 2023.
    """

    def __init__(self, rng: random.Random, faults: LinkFaults) -> None:
        self._rng = rng
        self.faults = faults
        self._queue: list[_InFlight] = []
        self._seq = itertools.count()
        self._held_until: dict[str, int] = {}
        self._cut: set[str] = set()

    def hold(self, printer_id: str, until: int) -> None:
        """Queue all traffic of ``printer_id`` until ``until``, then deliver it at once."""
        self._held_until[printer_id] = max(until, self._held_until.get(printer_id, 0))

    def cut(self, printer_id: str, *, down: bool) -> None:
        """Drop every message to or from ``printer_id`` while down (a dead link, no queue)."""
        if down:
            self._cut.add(printer_id)
        else:
            self._cut.discard(printer_id)

    def path_up(self, printer_id: str, now: int) -> bool:
        """Whether a probe through this printer's path would come back now."""
        return printer_id not in self._cut and self._held_until.get(printer_id, 0) <= now

    def send(self, now: int, printer_id: str, to: str, payload: bytes) -> None:
        """Send ``payload`` between the cloud and ``printer_id`` (either direction)."""
        if printer_id in self._cut or self._rng.random() < self.faults.drop:
            return
        copies = 2 if self._rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            deliver_at = now
            if printer_id not in self.faults.near:
                deliver_at += self._rng.randint(0, self.faults.max_delay_ms)
            deliver_at = max(deliver_at, self._held_until.get(printer_id, 0))
            message = _InFlight(deliver_at, next(self._seq), to, printer_id, payload)
            heapq.heappush(self._queue, message)

    def next_due(self, now: int) -> _InFlight | None:
        """The next message that arrives by ``now``, in arrival order, if any."""
        if self._queue and self._queue[0].deliver_at <= now:
            return heapq.heappop(self._queue)
        return None

    @property
    def in_flight(self) -> int:
        """Messages still travelling."""
        return len(self._queue)
