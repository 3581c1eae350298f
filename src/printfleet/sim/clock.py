"""The simulator's hardware clock: real monotonic time, sped up by a time scale."""

from __future__ import annotations

import asyncio
import time

__all__ = ["SimClock"]


class SimClock:
    """A `HardwareClock` that runs `time_scale` times faster than real time.

    With `time_scale=60` a ten-minute print takes ten real seconds. Many printers may share one
    clock. It reads `time.monotonic`, the clock asyncio's loop uses, so hardware-time sleeps and
    loop timers agree.
    """

    __slots__ = ("_real_origin", "_start", "_time_scale")

    def __init__(self, time_scale: float = 1.0, *, start: float = 0.0) -> None:
        if not time_scale > 0.0:
            raise ValueError("time_scale must be positive")
        self._time_scale = time_scale
        self._start = start
        self._real_origin = time.monotonic()

    @property
    def time_scale(self) -> float:
        """Hardware seconds per real second."""
        return self._time_scale

    def now(self) -> float:
        """Hardware seconds since the clock was made, plus `start`."""
        return self._start + (time.monotonic() - self._real_origin) * self._time_scale

    def real_seconds(self, hardware_seconds: float) -> float:
        """How long `hardware_seconds` last in real time."""
        return hardware_seconds / self._time_scale

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of hardware time."""
        await asyncio.sleep(max(0.0, seconds) / self._time_scale)
