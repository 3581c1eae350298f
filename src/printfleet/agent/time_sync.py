"""Clock sync: the printer times round trips to the cloud so its core can bound its offset.

Deadlines are judged in cloud time (S2); a printer that cannot bound its offset refuses starts.
The core does the estimating (`printfleet.protocol.clock`); this module decides when to ask.
"""

import asyncio
from collections.abc import Callable
from typing import Protocol

from printfleet.protocol.messages import Event
from printfleet.protocol.printer import PrinterCore


class Link(Protocol):
    """Whether the printer is connected to the broker now."""

    @property
    def connected(self) -> bool:
        """True while a session is up."""
        ...


class ClockSync:
    """Asks the cloud for the time on every connect and every ``period_s`` while connected."""

    __slots__ = ("_emit", "_link", "_period_s")

    def __init__(self, link: Link, emit: Callable[[Event], None], *, period_s: float) -> None:
        self._link = link
        self._emit = emit
        self._period_s = period_s

    def request(self, core: PrinterCore, now_local: int) -> None:
        """Send one timed request now."""
        self._emit(core.request_time(now_local))

    async def run(self, core: PrinterCore, clock_ms: Callable[[], int]) -> None:
        """Ask every period, until cancelled."""
        while True:
            await asyncio.sleep(self._period_s)
            # Only while connected: a request queued through an outage would time nothing.
            if self._link.connected:
                self.request(core, clock_ms())
