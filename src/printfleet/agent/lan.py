"""The agent's LAN API: the printer, usable over the local network with no broker and no cloud.

A small Starlette app served by uvicorn inside the agent's own event loop. Every request must
carry the printer's access code (compared in constant time); an address that sends too many
wrong codes is refused with 429 and Retry-After until its window passes. The address is the
socket's peer, or what ``X-Forwarded-For`` says only when the peer is a configured proxy.
Connections live under a budget and deadlines (``lan_connections``) that clients without the
code cannot use to keep out one that has it. Every action goes through the agent's local
actions, so the same gate judges it as judges cloud commands (S3-S6). Off unless the agent
config sets ``lan_listen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from printfleet.agent.config import lan_address
from printfleet.agent.hardware import FileNameError, HeaterId, validate_file_name
from printfleet.agent.lan_connections import (
    ConnectionBudget,
    LanServerConfig,
    connection_of,
    is_trusted_proxy,
)
from printfleet.client.lan import (
    ACCESS_CODE_HEADER,
    API_PREFIX,
    SHA256_HEADER,
    LanFile,
    LanJob,
    LanProgress,
    LanStatus,
)
from printfleet.protocol.messages import StartSource

if TYPE_CHECKING:
    from printfleet.agent.runtime import LocalAction, PrinterAgent
    from printfleet.protocol.printer import Output

__all__ = ["FailureLimiter", "LanApi", "lan_app", "serve_lan", "status_of"]

log = logging.getLogger(__name__)

CLOUD_FILE_PREFIX = "job-"
"""Files the cloud stages are named ``job-<job id>.gcode``; LAN uploads may not use it."""
MAX_JSON_BYTES = 16 * 1024
"""Action bodies are a few fields; anything larger is refused before it is parsed."""
MAX_TRACKED_ADDRESSES = 4096
"""Client addresses whose failures are remembered; the least recently failing go first."""
MAX_HEAD_BYTES = 8 * 1024
"""A request head still unfinished after this many bytes is refused with 400: what a client
without the code can make the printer hold per connection."""
_KEEP_ALIVE_S = 5
_SHUTDOWN_S = 2
# Refusals end the connection, so a client without the code holds no slot after its answer.
_CLOSE = {"Connection": "close"}


class FailureLimiter:
    """Counts wrong access codes per client address in a sliding window.

    An address with ``max_failures`` failures inside ``window_s`` is locked out until the
    oldest of them leaves the window. Memory is bounded: at most ``max_failures`` times per
    address, and at most ``max_addresses`` addresses.
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None if it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.max_failures:
            return None
        return max(0.0, failures[0] + self.window_s - self._clock())

    def failed(self, address: str) -> None:
        """Note one wrong code from ``address``."""
        failures = self._recent(address)
        if failures is None:
            failures = deque(maxlen=self.max_failures)
            self._failures[address] = failures
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        self._failures.move_to_end(address)
        failures.append(self._clock())

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures


class _PrintRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, max_length=128)
    started_by: Literal["lan", "screen"] = "lan"


class _PersonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(default="a person on the LAN", min_length=1, max_length=200)


class _Rejected(Exception):  # noqa: N818 - control flow inside a request, turned into a reply
    def __init__(self, status: int, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason

    def response(self) -> JSONResponse:
        body: dict[str, str] = {"detail": self.detail}
        if self.reason is not None:
            body["reason"] = self.reason
        return JSONResponse(body, status_code=self.status)


Endpoint = Callable[[Request], Awaitable[Response]]


class LanApi:
    """The endpoints, each behind the access-code check and the per-address limiter."""

    def __init__(self, agent: PrinterAgent) -> None:
        secret = agent.config.lan_access_code
        if secret is None:
            msg = "the LAN API needs lan_access_code"
            raise ValueError(msg)
        self.agent = agent
        self.limiter = FailureLimiter(agent.config.lan_max_failures, agent.config.lan_lockout_s)
        self._code = secret.get_secret_value().encode()

    def app(self) -> Starlette:
        """The ASGI app."""
        from printfleet.agent.runtime import LocalAction  # noqa: PLC0415 - runtime imports us lazily

        guarded = self._guarded
        action = self._action
        prefix = API_PREFIX
        routes = [
            Route(f"{prefix}/status", guarded(self.status), methods=["GET"]),
            Route(f"{prefix}/files", guarded(self.files), methods=["GET"]),
            Route(f"{prefix}/files/{{name}}", guarded(self.upload), methods=["PUT"]),
            Route(f"{prefix}/print", guarded(self.start), methods=["POST"]),
            Route(f"{prefix}/pause", guarded(action(LocalAction.PAUSE)), methods=["POST"]),
            Route(f"{prefix}/resume", guarded(action(LocalAction.RESUME)), methods=["POST"]),
            Route(f"{prefix}/cancel", guarded(action(LocalAction.CANCEL)), methods=["POST"]),
            Route(
                f"{prefix}/confirm-plate",
                guarded(action(LocalAction.CONFIRM_PLATE, with_person=True)),
                methods=["POST"],
            ),
            Route(
                f"{prefix}/clear-fault",
                guarded(action(LocalAction.CLEAR_FAULT, with_person=True)),
                methods=["POST"],
            ),
        ]
        return Starlette(routes=routes, exception_handlers={ValidationError: _invalid})

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def handle(request: Request) -> Response:
            address = request.client.host if request.client is not None else "unknown"
            wait = self.limiter.retry_after(address)
            if wait is not None:
                # Refused before the code is even looked at: a locked-out guesser learns nothing.
                return JSONResponse(
                    {"detail": "too many wrong access codes; try again later"},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait))), **_CLOSE},
                )
            given = request.headers.get(ACCESS_CODE_HEADER, "").encode()
            if not hmac.compare_digest(given, self._code):
                self.limiter.failed(address)
                log.warning(
                    "printer %s: wrong LAN access code from %s",
                    self.agent.config.printer_id,
                    address,
                )
                return JSONResponse(
                    {"detail": "wrong access code"}, status_code=401, headers=_CLOSE
                )
            connection = connection_of(request.scope)
            if connection is not None:
                connection.authenticated = True
            try:
                return await endpoint(request)
            except _Rejected as rejected:
                return rejected.response()

        return handle

    async def status(self, request: Request) -> Response:
        """The printer's state."""
        return _json(status_of(self.agent))

    async def files(self, request: Request) -> Response:
        """The stored files."""
        stored = await self.agent.hardware.storage.list_files()
        return JSONResponse([LanFile(name=f.name, size=f.size).model_dump() for f in stored])

    async def upload(self, request: Request) -> Response:
        """Store the request body as a file, checking its size and (if sent) its sha256."""
        agent = self.agent
        name = _file_name(request.path_params["name"])
        expected = request.headers.get(SHA256_HEADER, "").lower() or None
        announced = request.headers.get("content-length")
        limit = agent.config.lan_max_upload_bytes
        too_large = _Rejected(413, f"the file is larger than this printer takes ({limit} bytes)")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise too_large
        if _printing_file(agent) == name:
            raise _Rejected(409, f"{name} is being printed", "BUSY")
        hasher = hashlib.sha256()

        async def chunks() -> AsyncIterator[bytes]:
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise too_large
                hasher.update(chunk)
                yield chunk

        try:
            stored = await agent.hardware.storage.write(name, chunks())
        except ClientDisconnect:
            raise _Rejected(400, "the upload was cut short") from None
        digest = hasher.hexdigest()
        if expected is not None and expected != digest:
            with contextlib.suppress(FileNotFoundError):
                await agent.hardware.storage.delete(name)
            raise _Rejected(
                422, f"sha256 mismatch: got {digest[:12]}…, expected {expected[:12]}…; not kept"
            )
        body = LanFile(name=stored.name, size=stored.size).model_dump()
        return JSONResponse({**body, "sha256": digest}, status_code=201)

    async def start(self, request: Request) -> Response:
        """Print a stored file, if the gate agrees."""
        asked = _PrintRequest.model_validate(await _body(request))
        source = StartSource(asked.started_by)
        if source is StartSource.SCREEN and not _is_loopback(request):
            # The screen runs on the printer itself; anyone else is on the LAN.
            raise _Rejected(403, "only the printer's own screen may start as the screen")
        try:
            job_id, output = await self.agent.start_local_print(asked.file, source)
        except FileNameError as error:
            raise _Rejected(400, str(error)) from None
        except FileNotFoundError as error:
            raise _Rejected(404, str(error)) from None
        _raise_if_refused(output)
        job = LanJob(job_id=job_id, file=asked.file, started_by=asked.started_by)
        return JSONResponse(job.model_dump(), status_code=202)

    def _action(self, kind: LocalAction, *, with_person: bool = False) -> Endpoint:
        async def act(request: Request) -> Response:
            by = "a person on the LAN"
            if with_person:
                by = _PersonRequest.model_validate(await _body(request)).by
            _raise_if_refused(await self.agent.act_locally(kind, by))
            return _json(status_of(self.agent))

        return act


def lan_app(agent: PrinterAgent) -> Starlette:
    """The LAN API of ``agent`` as an ASGI app (``serve_lan`` runs it)."""
    return LanApi(agent).app()


def status_of(agent: PrinterAgent) -> LanStatus:
    """What ``GET /status`` answers."""
    state = agent.core.state
    handle = agent.hardware.current_print()
    progress = None
    if handle is not None and state.job_id is not None:
        snapshot = handle.progress()
        progress = LanProgress(
            percent=max(0, min(100, int(snapshot.percent))),
            layer=max(0, snapshot.layer),
            total_layers=snapshot.total_layers or 0,
            time_left_s=int(snapshot.time_left or 0),
        )
    return LanStatus(
        printer_id=agent.config.printer_id,
        model=agent.hardware.model,
        mode=agent.config.mode,
        status=state.status.value,
        job_id=state.job_id,
        file=handle.file_name if handle is not None and state.job_id is not None else None,
        plate=state.plate_status().value,
        fault=state.fault,
        broker_connected=agent.ready.is_set(),
        progress=progress,
        hotend_c=agent.hardware.read_heater(HeaterId.HOTEND).temperature,
        bed_c=agent.hardware.read_heater(HeaterId.BED).temperature,
    )


def _printing_file(agent: PrinterAgent) -> str | None:
    handle = agent.hardware.current_print()
    return None if handle is None else handle.file_name


def _raise_if_refused(output: Output) -> None:
    decision = output.decision
    if not decision.accepted:
        reason = decision.reason.value if decision.reason is not None else "REFUSED"
        raise _Rejected(409, decision.detail, reason)


def _file_name(name: str) -> str:
    try:
        validate_file_name(name)
    except FileNameError as error:
        raise _Rejected(400, str(error)) from None
    if name.startswith(CLOUD_FILE_PREFIX):
        # The cloud's staged files: the gate trusts their checksum from staging, so nobody
        # may replace one between its stage and its start.
        raise _Rejected(403, f"names starting with {CLOUD_FILE_PREFIX!r} are the cloud's")
    return name


def _is_loopback(request: Request) -> bool:
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def _body(request: Request) -> Any:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise _Rejected(413, f"a request body is at most {MAX_JSON_BYTES} bytes")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise _Rejected(400, "the body is not JSON") from None


async def _invalid(request: Request, error: Exception) -> Response:
    detail = str(error).splitlines()
    return JSONResponse({"detail": "; ".join(detail[:3])[:300]}, status_code=422)


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside someone else's event loop: the agent owns the signals and the loop."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._started_event.set()


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(64)
        listener.setblocking(False)  # noqa: FBT003 - the stdlib's signature
    except OSError:
        listener.close()
        raise
    return listener


async def serve_lan(agent: PrinterAgent) -> None:
    """Serve ``agent``'s LAN API on ``config.lan_listen`` until cancelled.

    Sets ``agent.lan_address`` and ``agent.lan_ready`` once it accepts connections.
    """
    listen = agent.config.lan_listen
    if listen is None:
        msg = "the LAN API is off: lan_listen is not set"
        raise ValueError(msg)
    settings = agent.config
    host, port = lan_address(listen)
    proxies = settings.lan_trusted_proxies
    budget = ConnectionBudget(
        settings.lan_max_connections,
        settings.lan_max_connections_per_address,
        exempt=lambda address: is_trusted_proxy(address, proxies),
    )
    listener = _listening_socket(host, port)
    started = asyncio.Event()
    config = LanServerConfig(
        lan_app(agent),
        budget=budget,
        header_timeout_s=settings.lan_header_timeout_s,
        idle_timeout_s=settings.lan_idle_timeout_s,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        # uvicorn trusts X-Forwarded-For from loopback by default (and from FORWARDED_ALLOW_IPS):
        # off unless proxies are configured, and then from them alone.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=[str(network) for network in proxies],
        # Its limit answers 503 to everyone while idle sockets fill it; the budget replaces it.
        limit_concurrency=None,
        timeout_keep_alive=_KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_graceful_shutdown=_SHUTDOWN_S,
    )
    server = _EmbeddedServer(config, started)
    serving = asyncio.create_task(
        server.serve(sockets=[listener]), name=f"{agent.config.printer_id}:lan-server"
    )
    try:
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if serving.done():
            serving.result()
            msg = "the LAN API stopped while starting"
            raise RuntimeError(msg)
        bound = listener.getsockname()
        agent.lan_address = (str(bound[0]), int(bound[1]))
        agent.lan_ready.set()
        log.info("printer %s: LAN API on %s:%d", agent.config.printer_id, *agent.lan_address)
        await asyncio.shield(serving)
    finally:
        agent.lan_ready.clear()
        server.should_exit = True
        # asyncio.wait, not a timeout: this may run while the task is being cancelled.
        await asyncio.wait({serving}, timeout=_SHUTDOWN_S * 2)
        if not serving.done():
            serving.cancel()
            await asyncio.wait({serving})
        listener.close()
