"""Fault injectors against the real processes of a chaos world.

Each injector breaks one thing and heals it, and records both in the history. Broker faults
act on the Mosquitto process itself (kill -9 and restart on the same port; SIGSTOP and
SIGCONT); link faults act on the :class:`FaultProxy` between a component and the broker; the
false reconnect is the 2023 failure whole — the command client's connection times out, every
reconnect is answered by a fake broker, and (only with safeguards off) the link supervisor takes
the adapter's word for it; a printer restart cuts the power of the printer that is printing; a
printer away is one whose agent is stopped, or whose link goes silent while its connection stays
open (a frozen agent, as the broker and the cloud see it).
"""

import asyncio
import signal
from typing import Literal, Protocol

from printfleet.chaos.cloud_process import CloudProcess, CloudProcessConfig
from printfleet.chaos.proxy import FaultProxy, ProxyMode
from printfleet.chaos.unsafe import CredulousLink
from printfleet.chaos.world import World


class Fault(Protocol):
    """An injector that breaks one thing when told and heals it when told."""

    async def inject(self) -> None:
        """Break it, and record that in the history."""
        ...

    async def heal(self) -> None:
        """Heal it, and record that in the history."""
        ...


class BrokerKill:
    """``kill -9`` the broker; restart it on the same port."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def inject(self) -> None:
        """Kill the broker."""
        await asyncio.to_thread(self.world.broker.kill)
        self.world.fault("broker killed (SIGKILL)")

    async def heal(self) -> None:
        """Start it again."""
        await asyncio.to_thread(self.world.broker.restart)
        self.world.fault("heal: broker restarted")


class BrokerFreeze:
    """``SIGSTOP`` the broker: every link stays open and nothing answers."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def inject(self) -> None:
        """Stop the broker."""
        await asyncio.to_thread(self.world.broker.freeze)
        self.world.fault("broker frozen (SIGSTOP)")

    async def heal(self) -> None:
        """Continue it."""
        await asyncio.to_thread(self.world.broker.thaw)
        self.world.fault("heal: broker continued (SIGCONT)")


class FalseReconnect:
    """The 2023 failure: the cloud's command client times out and its adapter lies."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def inject(self) -> None:
        """Cut the command link; answer reconnects with a fake broker; maybe believe it."""
        self.world.proxy_out.set_mode(ProxyMode.LIE)
        # With safeguards on the supervisor believes only probes that came back through the
        # broker; with them off the command client is the credulous one, and takes the client
        # library's word, as the 2023 cloud did.
        link = self.world.cloud.link_out
        trusted = isinstance(link, CredulousLink)
        if isinstance(link, CredulousLink):
            link.believing = True
        self.world.fault("command client timed out; adapter reports a reconnect", trusted=trusted)

    async def heal(self) -> None:
        """The link really returns; whatever the fake swallowed reaches the broker in a burst."""
        if isinstance(self.world.cloud.link_out, CredulousLink):
            self.world.cloud.link_out.believing = False
        self.world.proxy_out.set_mode(ProxyMode.FORWARD)
        self.world.fault("heal: command link really back")


class ProxyFault:
    """Any :class:`ProxyMode` on one component's link, then back to forwarding."""

    def __init__(self, world: World, target: str, mode: ProxyMode) -> None:
        self.world = world
        self.target = target
        self.mode = mode

    def _proxy(self) -> FaultProxy:
        if self.target == "cloud-in":
            return self.world.proxy_in
        if self.target == "cloud-out":
            return self.world.proxy_out
        return self.world.printers[self.target].proxy

    async def inject(self) -> None:
        """Switch the link's proxy to the fault mode."""
        self._proxy().set_mode(self.mode)
        self.world.fault(f"link {self.target}: {self.mode.value}")

    async def heal(self) -> None:
        """Forward again (a held pile is delivered first)."""
        self._proxy().set_mode(ProxyMode.FORWARD)
        self.world.fault(f"heal: link {self.target} forwards")


class PrinterLinkBurst(ProxyFault):
    """A printer's link keeps every byte and delivers the pile in one burst later."""

    def __init__(self, world: World, printer_id: str) -> None:
        super().__init__(world, printer_id, ProxyMode.HOLD)


class PrinterRestart:
    """Cut the power of a printer that is printing (or of any, if none is) and boot it."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def inject(self) -> None:
        """Power cycle mid-print."""
        slots = self.world.printers.values()
        printing = [
            slot.printer_id
            for slot in slots
            if slot.hardware is not None and slot.hardware.current_print() is not None
        ]
        printer_id = printing[0] if printing else next(iter(self.world.printers))
        self.world.fault("printer power cycled", printer_id=printer_id, mid_print=bool(printing))
        await self.world.restart_printer(printer_id)


class PrinterAway:
    """A printer leaves and comes back with whatever lay on its plate: its agent ``stopped``
    (power off, then on: a new connection, settings restored from its journal), or ``frozen``
    (its link black-holed: the TCP connection stays open and nothing passes either way, until
    the keep-alive gives up on both sides).

    The agents run in the harness's own process, so a frozen agent is the link's silence, not
    a SIGSTOP; what the broker and the cloud see is the same half-open connection.
    """

    def __init__(self, world: World, printer_id: str, how: Literal["stopped", "frozen"]) -> None:
        self.world = world
        self.printer_id = printer_id
        self.how = how

    async def inject(self) -> None:
        """The printer goes away."""
        if self.how == "stopped":
            await self.world.power_off(self.printer_id)
        else:
            self.world.printers[self.printer_id].proxy.set_mode(ProxyMode.BLACKHOLE)
        self.world.fault(f"printer {self.how}", printer_id=self.printer_id)

    async def heal(self) -> None:
        """The printer comes back."""
        if self.how == "stopped":
            await self.world.power_on(self.printer_id)
        else:
            self.world.printers[self.printer_id].proxy.set_mode(ProxyMode.FORWARD)
        self.world.fault(f"heal: printer no longer {self.how}", printer_id=self.printer_id)


class CloudCrash:
    """The cloud, in a process of its own on the world's PostgreSQL, is ``kill -9``-ed right
    after it records a start as dispatched and before it publishes it; a fresh cloud process
    (new MQTT clients, empty memory) boots on the same store."""

    def __init__(self, world: World) -> None:
        if world.database_url is None:
            msg = "the cloud-crash fault needs a world with database='postgres'"
            raise ValueError(msg)
        self.world = world
        self.database_url = world.database_url
        self.processes: list[CloudProcess] = []

    def _process(self, *, crash: bool) -> CloudProcess:
        world = self.world
        sensorless = [
            printer_id
            for printer_id, slot in world.printers.items()
            if slot.hardware is not None and not slot.hardware.has_plate_sensor
        ]
        config = CloudProcessConfig(
            inbound_url=f"mqtt://127.0.0.1:{world.proxy_in.port}",
            outbound_url=f"mqtt://127.0.0.1:{world.proxy_out.port}",
            database_url=self.database_url,
            signing_key_hex=world.signer.private_bytes().hex(),
            files_url=world.files_url,
            history=str(world.home / f"cloud-process-{len(self.processes)}.jsonl"),
            printers=list(world.printers),
            confirm_plates=sensorless if not self.processes else [],
            dispatch_window_ms=world.settings.dispatch_window_ms,
            probe_interval_s=world.settings.probe_interval_s,
            safeguards=world.settings.safeguards,
            crash_at_dispatch=crash,
        )
        process = CloudProcess(config, world.home)
        self.processes.append(process)
        return process

    async def hand_over(self) -> None:
        """The in-process cloud stops; a cloud process armed to crash takes over."""
        await self.world.stop_cloud()
        await self._process(crash=True).start()

    async def crash_and_reboot(self, *, within: float) -> bool:
        """Wait for the armed process to kill itself at a dispatch; boot a fresh one."""
        crashing = self.processes[-1]
        try:
            async with asyncio.timeout(within):
                code = await crashing.wait_exit()
        except TimeoutError:
            await crashing.kill()
            code = None
        if code == -signal.SIGKILL:
            self.world.fault("cloud process killed -9 between recording a start and publishing it")
        await self._process(crash=False).start()
        return code == -signal.SIGKILL

    async def finish(self) -> None:
        """Stop every cloud process and fold what they recorded into the world's history."""
        for process in self.processes:
            await process.kill()
            for event in process.events():
                self.world.recorder.add(event)


class DatabaseRestart:
    """``kill -9`` the world's PostgreSQL and start it again on the same data and port."""

    def __init__(self, world: World) -> None:
        if world.postgres is None:
            msg = "the database-restart fault needs a world with database='postgres'"
            raise ValueError(msg)
        self.postgres = world.postgres
        self.world = world

    async def inject(self) -> None:
        """Kill the database server."""
        await asyncio.to_thread(self.postgres.kill)
        self.world.fault("database killed (SIGKILL)")

    async def heal(self) -> None:
        """Start it again."""
        await asyncio.to_thread(self.postgres.restart)
        self.world.fault("heal: database restarted")


class StartHeldInFlight:
    """The link between the broker and a printer starts delaying every byte just as a start
    for it is published, so the start arrives after its deadline: a late start, made certain.
    The printer must refuse it (S2)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.printer_id: str | None = None

    async def inject(self, delay_s: float, *, within: float) -> bool:
        """Delay the next start by ``delay_s`` (waiting up to ``within`` s for a start)."""
        self.printer_id = await self.world.delay_next_start(delay_s, within=within)
        return self.printer_id is not None

    async def heal(self) -> None:
        """The link forwards promptly again."""
        if self.printer_id is not None:
            self.world.printers[self.printer_id].proxy.set_mode(ProxyMode.FORWARD)
            self.world.fault("heal: printer link prompt again", printer_id=self.printer_id)
