"""Who hears about a printer (its owner and everyone it is shared with), cached briefly, and the
bounded memories the announcer's parts keep per printer and per job."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from printfleet.cloud.notify.records import AudienceLookup

AUDIENCE_TTL_S = 5.0
"""How long who-can-see-a-printer is cached; shares change rarely, telemetry comes often."""
MEMORY = 4096
"""Bounds on the per-job and per-printer memories of the announcer's parts."""


class Bounded(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond a size."""

    def __init__(self, size: int = MEMORY) -> None:
        super().__init__()
        self._size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self._size:
            self.popitem(last=False)


class PrinterAudience:
    """Who can see each printer, read from the store and kept for ``ttl_s``."""

    def __init__(
        self,
        printers: AudienceLookup,
        *,
        ttl_s: float = AUDIENCE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.printers = printers
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: Bounded = Bounded()

    async def of(self, printer_id: str, *, fresh: bool = False) -> frozenset[str]:
        """Who can see the printer: cached for a few seconds, unless ``fresh`` (for alerts,
        and state changes, which are rarer than telemetry and must reach someone the printer
        was shared with a moment ago)."""
        now = self._clock()
        cached: tuple[float, frozenset[str]] | None = self._cached.get(printer_id)
        if not fresh and cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        audience = await self.printers.audience(printer_id)
        self._cached[printer_id] = (now, audience)
        return audience
