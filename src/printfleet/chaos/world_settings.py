"""How a chaos world (:mod:`printfleet.chaos.world`) runs, and who asks for prints in it."""

from dataclasses import dataclass
from typing import Literal

USER = "user"
"""The one person asking for prints in a world whose printers all have one owner."""


@dataclass(frozen=True, slots=True)
class WorldSettings:
    """How one world runs."""

    safeguards: bool = True
    probe_interval_s: float = 1.0
    dispatch_window_ms: int = 30_000
    time_scale: float = 20.0
    """Simulated printer seconds per real second: prints take a few real seconds."""
    printers: tuple[str, ...] = ("x1", "x1", "p1")
    clock_skew: bool = False
    """Give every printer's clock an offset of hours and a drift of hundreds of ppm."""
    keepalive_s: int = 2
    """The agents' MQTT keep-alive: short, so dead links are noticed within a quick run."""
    database: Literal["memory", "postgres"] = "memory"
    """Jobs in memory (the store's rules, no I/O) or in the real store on a PostgreSQL of the
    world's own, which the harness can restart."""
    owners: tuple[str, ...] = ()
    """Who owns each printer (in ``printers``' order); empty: :data:`USER` owns them all. Other
    owners need the memory store, whose roster the harness changes as owners do."""
