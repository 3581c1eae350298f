"""The overload benchmark's processes: the cloud under test, and the load generators.

Each runs in a process of its own (``multiprocessing`` with ``spawn``), so the cloud's event
loop, and each generator's, get a core's worth of time of their own rather than sharing one
interpreter. Generators send open-loop Poisson arrivals from many simulated clients: a request
arrives when it arrives, however slowly the cloud answers, as a crowd of desktop apps would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal
from urllib.parse import urlsplit

from printfleet.client.retry import RetryCall, RetryPolicy

__all__ = [
    "NOT_SENT",
    "ClientStyle",
    "LoadPlan",
    "LoadResult",
    "RequestRecord",
    "pin_to",
    "run_load",
    "serve_cloud",
]

ClientStyle = Literal["sdk", "naive", "closed"]
"""How simulated clients behave: ``sdk`` as printfleet's client (backoff with full jitter, a
retry budget, a breaker, Retry-After honoured, a deadline header); ``naive`` as the 2023 desktop
app (every failure retried at once, no budget); ``closed`` a closed loop of single attempts,
for measuring capacity."""

DEADLINE_HEADER = "X-Request-Deadline"

OK = "ok"
TIMEOUT = "timeout"
TRANSPORT = "transport"
BREAKER = "breaker_open"
UNFINISHED = "unfinished"
"""Still waiting for an answer (or a retry) when the run ended."""
NOT_SENT = "not_sent"
"""The generator fell more than ``_MAX_LAG_S`` behind its schedule and skipped the arrival."""
_MAX_LAG_S = 1.0


# ---------------------------------------------------------------------------------------------
# The cloud under test.


def pin_to(role: Literal["cloud", "load"]) -> str | None:
    """Give the cloud the first CPU and the load generators the others (Linux, 2+ CPUs).

    The cloud's capacity is then measured on the same single core in the closed loop and under
    overload, instead of depending on how much of a shared core the generators happen to take.
    Returns the CPUs chosen, for the report (None where pinning is not possible).
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is None:  # pragma: no cover - not Linux
        return None
    cpus = sorted(affinity(0))
    if len(cpus) < 2:  # noqa: PLR2004 - pinning needs one CPU for each side
        return None
    chosen = {cpus[0]} if role == "cloud" else set(cpus[1:])
    os.sched_setaffinity(0, chosen)
    return ",".join(str(cpu) for cpu in sorted(chosen))


def serve_cloud(settings: dict[str, Any], ready: Connection, log_file: str) -> None:
    """Run the cloud with ``settings`` (``Settings`` fields) on a free port; send the port.

    Like ``printfleet serve``, but without a line of access log per request (at thousands of
    requests per second the log, not the cloud, would be measured), and warnings go to
    ``log_file``: an overloaded cloud stopped mid-backlog has much to say.
    """
    import uvicorn  # noqa: PLC0415 - only the child needs it

    from printfleet.cloud.app import Settings, create_app  # noqa: PLC0415

    pin_to("cloud")
    logging.basicConfig(
        filename=log_file, level=logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    # Said to be TCP, or asyncio leaves Nagle on and responses wait for delayed ACKs.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    app = create_app(Settings.model_validate({**settings, "public_url": url}))
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ws="none",
        backlog=4096,
        timeout_graceful_shutdown=2,
        proxy_headers=False,  # as `printfleet serve`: no forwarded header is believed
    )
    ready.send(port)
    ready.close()
    with listener, contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])


# ---------------------------------------------------------------------------------------------
# Load generation.


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one generator process sends."""

    url: str
    tokens: tuple[str, ...]
    """One per simulated client."""
    job_body: dict[str, Any]
    """The body of a job submission; replays one of ``job_keys``."""
    job_keys: tuple[str, ...]
    style: ClientStyle
    start_at: float
    """Wall-clock time (``time.time()``) of the first step, shared by every generator."""
    steps: tuple[tuple[float, float], ...]
    """(arrivals per second for this process, seconds) in order; for ``closed``, (workers, s)."""
    post_share: float = 0.25
    attempt_timeout_s: float = 5.0
    """How long a client waits for one answer."""
    patience_s: float = 10.0
    """How long an SDK client keeps trying one request, retries and waits included."""
    naive_attempts: int = 5
    connections_per_client: int = 4
    grace_s: float = 5.0
    """After the last step: how long outstanding requests may still finish."""
    seed: int = 0


@dataclass(slots=True)
class RequestRecord:
    """One simulated request: when it arrived and what became of it."""

    scheduled: float
    """Wall-clock arrival time."""
    lag: float
    """How late the generator started it (it is late when its own loop is saturated)."""
    outcome: str = UNFINISHED
    """``ok``, an HTTP status (``503``), ``timeout``, ``transport``, ``breaker_open``, ..."""
    completed: float = math.nan
    """Wall-clock time of the answer that ended it."""
    attempt_latency: float = math.nan
    """Seconds the successful attempt took (the server admitted and answered it)."""
    attempts: int = 0


@dataclass(slots=True)
class LoadResult:
    """What a generator saw: every request, and when each attempt went out."""

    records: list[RequestRecord] = field(default_factory=list)
    sends: list[float] = field(default_factory=list)


def run_load(plan: LoadPlan, results: Connection) -> None:
    """A generator process: run ``plan`` and send back a :class:`LoadResult`.

    The result is sent as soon as the plan is done: unwinding thousands of abandoned requests
    afterwards may take a while, and the parent need not wait for it.
    """
    pin_to("load")
    try:
        import uvloop  # noqa: PLC0415 - optional, as for uvicorn
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(_generate(plan, results))
    else:
        uvloop.run(_generate(plan, results))


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300  # noqa: PLR2004 - the 2xx range

    def error_code(self) -> str:
        """The API's error code (``overloaded``, ``store_busy``, ...), else the status."""
        with contextlib.suppress(ValueError, AttributeError):
            code = json.loads(self.body).get("error")
            if isinstance(code, str):
                return code
        return str(self.status_code)


class _RawHttp:
    """A minimal HTTP/1.1 keep-alive client for exactly the benchmark's requests.

    httpx spends about a millisecond of CPU per request; at ten times the cloud's capacity, on
    the cloud's own machine, a generator built on it measures itself. This one writes a request
    and reads a Content-Length answer, and nothing else.
    """

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self._host_header = f"{self.host}:{self.port}"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> _Answer:
        """Send one request; raises OSError / IncompleteReadError if the connection fails."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None:
            lines.append("Content-Type: application/json")
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        while True:
            reused = bool(self._idle)
            if reused:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                if reused:
                    continue  # the server closed an idle connection: use a fresh one
                raise
            except BaseException:
                writer.close()
                raise
            try:
                status_line, *header_lines = head.decode("latin-1").split("\r\n")
                answer_headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name:
                        answer_headers[name.strip().lower()] = value.strip()
                content = await reader.readexactly(int(answer_headers.get("content-length", "0")))
            except BaseException:
                writer.close()
                raise
            if answer_headers.get("connection", "").lower() == "close":
                writer.close()
            else:
                self._idle.append((reader, writer))
            return _Answer(int(status_line.split(" ", 2)[1]), answer_headers, content)

    def close(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class _SimulatedClient:
    def __init__(self, token: str, style: ClientStyle, seed: int, connections: int) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.policy = RetryPolicy()
        self.policy.backoff.rng.seed(seed)
        self.style = style
        # An app talks to the cloud over a few connections; more requests wait for one, as
        # in an HTTP client's pool. Without this bound a naive fleet's retries would open
        # thousands of connections and measure this generator's CPU, not the cloud.
        self.connections = asyncio.Semaphore(connections)


class _Generator:
    def __init__(self, plan: LoadPlan, http: _RawHttp) -> None:
        self.plan = plan
        self.http = http
        self.rng = random.Random(plan.seed)  # noqa: S311 - arrivals, not secrets
        self.clients = [
            _SimulatedClient(
                token, plan.style, plan.seed * 100_003 + index, plan.connections_per_client
            )
            for index, token in enumerate(plan.tokens)
        ]
        self.result = LoadResult()
        self._job_body = json.dumps(plan.job_body).encode()

    def _request(self) -> tuple[str, str, bytes | None, dict[str, str]]:
        if self.rng.random() < self.plan.post_share:
            key = self.rng.choice(self.plan.job_keys)
            return "POST", "/api/v1/jobs", self._job_body, {"Idempotency-Key": key}
        return "GET", "/api/v1/jobs?limit=20", None, {}

    async def _attempt(
        self,
        client: _SimulatedClient,
        request: tuple[str, str, bytes | None, dict[str, str]],
        timeout: float,  # noqa: ASYNC109 - the attempt's own deadline, also sent to the cloud
    ) -> tuple[_Answer | None, str, float]:
        method, path, body, extra = request
        headers = {**client.headers, **extra}
        if client.style == "sdk":
            headers[DEADLINE_HEADER] = str(int((time.time() + timeout) * 1000))
        sent = time.time()
        try:
            # The wait for a connection counts against the attempt's time, as in httpx.
            async with asyncio.timeout(timeout), client.connections:
                sent = time.time()
                self.result.sends.append(sent)
                response = await self.http.request(method, path, headers, body)
        except TimeoutError:
            return None, TIMEOUT, time.time() - sent
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            return None, TRANSPORT, time.time() - sent
        outcome = OK if response.is_success else response.error_code()
        return response, outcome, time.time() - sent

    def sdk_start(
        self, record: RequestRecord, client: _SimulatedClient
    ) -> Coroutine[Any, Any, None] | None:
        """Ask the client's breaker first, without a task: most arrivals end here at 10x."""
        request = self._request()
        call = client.policy.start(request[0], request[3])
        if not call.admit():
            record.outcome, record.completed = BREAKER, time.time()
            return None
        return self.sdk_request(record, client, request, call)

    async def sdk_request(
        self,
        record: RequestRecord,
        client: _SimulatedClient,
        request: tuple[str, str, bytes | None, dict[str, str]],
        call: RetryCall,
    ) -> None:
        give_up = record.scheduled + self.plan.patience_s
        while True:
            timeout = min(self.plan.attempt_timeout_s, give_up - time.time())
            response, outcome, took = await self._attempt(client, request, timeout)
            record.attempts += 1
            record.outcome = outcome
            if response is not None and response.is_success:
                record.outcome, record.completed, record.attempt_latency = OK, time.time(), took
                call.after_response(response.status_code)
                return
            if response is None:
                wait = call.after_transport_error()
            else:
                wait = call.after_response(
                    response.status_code, response.headers.get("retry-after")
                )
            if wait is None or time.time() + wait >= give_up:
                record.completed = time.time()
                return
            await asyncio.sleep(wait)
            if not call.admit():
                record.outcome, record.completed = BREAKER, time.time()
                return

    async def naive_request(self, record: RequestRecord, client: _SimulatedClient) -> None:
        request = self._request()
        for _ in range(self.plan.naive_attempts):
            response, outcome, took = await self._attempt(
                client, request, self.plan.attempt_timeout_s
            )
            record.attempts += 1
            record.outcome = outcome
            if response is not None and response.is_success:
                record.outcome, record.attempt_latency = OK, took
                break
        record.completed = time.time()

    async def open_loop(self) -> None:
        plan = self.plan
        tasks: set[asyncio.Task[None]] = set()
        moment = plan.start_at
        # A generator starved by its own clients' retries falls behind; past this it stops
        # sending altogether, so that a run ends when planned.
        hard_end = plan.start_at + sum(d for _, d in plan.steps) + plan.grace_s
        for rate, duration in plan.steps:
            end = moment + duration
            while True:
                moment += self.rng.expovariate(rate) if rate > 0 else duration
                if moment >= end:
                    break
                delay = moment - time.time()
                if delay > 0 and moment < hard_end:
                    await asyncio.sleep(delay)
                record = RequestRecord(moment, max(0.0, time.time() - moment))
                self.result.records.append(record)
                if record.lag > _MAX_LAG_S or time.time() > hard_end:
                    # This process cannot keep up: drop the arrival rather than let the run
                    # stretch on (the report says how many were not sent).
                    record.outcome = NOT_SENT
                    continue
                client = self.rng.choice(self.clients)
                if plan.style == "sdk":
                    work = self.sdk_start(record, client)
                    if work is None:
                        continue
                else:
                    work = self.naive_request(record, client)
                task = asyncio.create_task(work)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            moment = end
        await _finish(tasks, hard_end)

    async def closed_loop(self) -> None:
        plan = self.plan
        (workers, duration), *_ = plan.steps
        end = plan.start_at + duration

        async def worker(client: _SimulatedClient) -> None:
            while time.time() < end:
                record = RequestRecord(time.time(), 0.0)
                response, outcome, took = await self._attempt(
                    client, self._request(), plan.attempt_timeout_s
                )
                record.attempts, record.outcome, record.completed = 1, outcome, time.time()
                if response is not None and response.is_success:
                    record.outcome, record.attempt_latency = OK, took
                self.result.records.append(record)

        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        async with asyncio.TaskGroup() as group:
            for index in range(int(workers)):
                group.create_task(worker(self.clients[index % len(self.clients)]))


async def _finish(tasks: set[asyncio.Task[None]], until: float) -> None:
    """Let outstanding requests finish until ``until``; the rest stay ``unfinished``.

    They are not cancelled: the results are sent while they are still pending, and the
    process is ended after. Unwinding thousands of requests on a saturated loop would take
    longer than the run.
    """
    if tasks and until > time.time():
        await asyncio.wait(set(tasks), timeout=until - time.time())


async def _generate(plan: LoadPlan, results: Connection) -> None:
    http = _RawHttp(plan.url)
    try:
        generator = _Generator(plan, http)
        await asyncio.sleep(max(0.0, plan.start_at - time.time()))
        if plan.style == "closed":
            await generator.closed_loop()
        else:
            await generator.open_loop()
        results.send(generator.result)
        results.close()
    finally:
        http.close()
