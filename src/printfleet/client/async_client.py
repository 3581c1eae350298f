"""The asyncio printfleet client: every API call as a typed coroutine method.

Requests go through one :class:`~printfleet.client.retry.RetryPolicy`: only requests that are
safe to send twice are retried (job creation always carries an idempotency key), after a
jittered wait or the server's ``Retry-After``, within a retry budget, and not at all while the
breaker is open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import anyio.to_thread
import httpx
from httpx_sse import EventSource

from printfleet import __version__
from printfleet.client import calls, materials
from printfleet.client.errors import (
    Overloaded,
    PrintfleetError,
    RateLimited,
    ServerError,
    Unreachable,
)
from printfleet.client.events import Reconnection, StreamCursor, StreamEvent
from printfleet.client.models import (
    Alert,
    AuditEntry,
    Channel,
    ChannelKind,
    CommandSent,
    Delivery,
    Health,
    HeaterName,
    IssuedToken,
    Job,
    JobDetail,
    MaintenancePart,
    NotificationSent,
    Pool,
    Printer,
    PrintFile,
    Provisioned,
    Share,
    ShareRole,
    Stats,
    TelemetryPoint,
    Token,
    TokenScope,
    User,
)
from printfleet.client.retry import RetryPolicy
from printfleet.client.sync_client import (
    DEADLINE_HEADER,
    DEFAULT_TIMEOUT,
    STREAM_READ_TIMEOUT,
    UPLOAD_TIMEOUT,
    base_url,
    breaker_open,
    deadline_after,
    headers_for,
    unreachable,
)
from printfleet.client.upload import Progress, UploadBody
from printfleet.protocol.lifecycle import JobState

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of one printfleet cloud, as one user (by ``token``).

    Use as an async context manager, or await :meth:`aclose`. ``policy`` may be shared between
    clients so they share one retry budget and breaker; ``sleep`` is how retries wait
    (replaceable in tests); ``transport`` is passed to httpx. With ``send_deadline``, each
    attempt carries ``X-Request-Deadline`` (now + ``timeout``, by this machine's clock), so a
    server with admission control drops attempts the client has stopped waiting for; leave it
    off where the client's clock may be far from the server's.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        send_deadline: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = base_url(url)
        self.token = token
        """The bearer token; :meth:`login` sets it."""
        self.policy = policy if policy is not None else RetryPolicy()
        self._sleep = sleep
        self._timeout = timeout
        self._send_deadline = send_deadline
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": f"printfleet-sdk/{__version__}"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, call: calls.Call[T]) -> T:
        """Send ``call``, retrying as the policy allows; its answer, or the error it ended in."""
        headers = headers_for(self.token, dict(call.headers))
        if not call.guarded:
            response = await self._request(call, headers)
            return self._answer(call, response)
        retry = self.policy.start(call.method, headers)
        while True:
            if not retry.admit():
                raise breaker_open(self.url, self.policy)
            try:
                response = await self._request(call, headers)
            except Unreachable:
                wait = retry.after_transport_error()
                if wait is None:
                    raise
            else:
                wait = retry.after_response(
                    response.status_code, response.headers.get("Retry-After")
                )
                if wait is None:
                    return self._answer(call, response)
            await self._sleep(wait)

    async def _request(self, call: calls.Call[Any], headers: dict[str, str]) -> httpx.Response:
        if self._send_deadline:
            headers = {**headers, DEADLINE_HEADER: deadline_after(self.policy, self._timeout)}
        try:
            return await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=headers
            )
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from error

    def _answer(self, call: calls.Call[T], response: httpx.Response) -> T:
        if response.is_success or response.status_code in call.accept:
            try:
                return call.read(response)
            except ValueError as error:  # pydantic's ValidationError included
                raise ServerError(
                    f"unexpected answer from {self.url}{call.path}: {error}"[:500],
                    status=response.status_code,
                ) from error
        raise calls.error_for(response, now=self.policy.wall_clock())

    # -- accounts --------------------------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str = "") -> User:
        """Create an account (the first one on a server, or any while registration is open)."""
        return await self.send(calls.register(email, password, display_name))

    async def login(
        self,
        email: str,
        password: str,
        token_name: str = "login",  # noqa: S107 - a label
    ) -> IssuedToken:
        """Log in: a new read/write token, which this client then uses."""
        issued = await self.send(calls.login(email, password, token_name))
        self.token = issued.token
        return issued

    async def list_tokens(self) -> list[Token]:
        """The caller's tokens, revoked ones included."""
        return await self.send(calls.list_tokens())

    async def create_token(
        self, name: str, scopes: list[TokenScope], *, expires_in_s: int | None = None
    ) -> IssuedToken:
        """A new token (no stronger than this client's), e.g. read-only for a dashboard; it
        expires after ``expires_in_s`` seconds (the server's default if None)."""
        return await self.send(calls.create_token(name, scopes, expires_in_s=expires_in_s))

    async def revoke_token(self, token_id: str) -> Token:
        """Revoke one of the caller's tokens."""
        return await self.send(calls.revoke_token(token_id))

    # -- printers --------------------------------------------------------------------------------

    async def list_printers(self) -> list[Printer]:
        """The printers the caller owns or has been shared, with their latest state."""
        return await self.send(calls.list_printers())

    async def get_printer(self, printer_id: str) -> Printer:
        """One printer and its latest state."""
        return await self.send(calls.get_printer(printer_id))

    async def printer_telemetry(
        self,
        printer_id: str,
        *,
        since: int | None = None,
        last_s: float | None = None,
        limit: int = 1000,
    ) -> list[TelemetryPoint]:
        """A printer's telemetry history, oldest first: since ``since`` (cloud ms) or of the
        last ``last_s`` seconds; neither means the last 10 minutes."""
        return await self.send(
            calls.printer_telemetry(printer_id, since=since, last_s=last_s, limit=limit)
        )

    async def provision_printer(self, printer_id: str, name: str, model: str) -> Provisioned:
        """Provision a printer: its broker login and agent config (the password is shown once)."""
        return await self.send(calls.provision_printer(printer_id, name, model))

    async def share_printer(self, printer_id: str, email: str, role: ShareRole) -> Share:
        """Let another user operate or view a printer the caller owns."""
        return await self.send(calls.share_printer(printer_id, email, role))

    async def shares(self, printer_id: str) -> list[Share]:
        """Who a printer the caller owns is shared with."""
        return await self.send(calls.shares(printer_id))

    async def unshare_printer(self, printer_id: str, email: str) -> Share:
        """Take a share away: that user's waiting jobs leave the printer."""
        return await self.send(calls.unshare_printer(printer_id, email))

    async def confirm_plate(self, printer_id: str) -> CommandSent:
        """Confirm the plate is clear (printers without a plate sensor)."""
        return await self.send(calls.confirm_plate(printer_id))

    async def set_plate_check(
        self, printer_id: str, *, enabled: bool, confirm: bool = False
    ) -> Printer:
        """Turn the plate check on, or off (which needs ``confirm=True``)."""
        call = calls.set_plate_check(printer_id, enabled=enabled, confirm=confirm)
        return await self.send(call)

    async def set_temperature(
        self, printer_id: str, heater: HeaterName, target_c: int
    ) -> CommandSent:
        """Preheat or cool a heater in °C (0 turns it off); sent now or not at all (503)."""
        return await self.send(calls.set_temperature(printer_id, heater, target_c))

    async def clear_fault(self, printer_id: str) -> CommandSent:
        """Clear a latched thermal fault, once someone has looked."""
        return await self.send(calls.clear_fault(printer_id))

    async def audit(
        self, printer_id: str, *, since: int | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """A printer's audit log, oldest first (owner only)."""
        return await self.send(calls.audit(printer_id, since=since, limit=limit))

    # -- files -----------------------------------------------------------------------------------

    async def upload(
        self, path: Path | str, *, name: str | None = None, progress: Progress | None = None
    ) -> PrintFile:
        """Upload a ``.gcode`` or ``.gcode.3mf`` file, streamed; ``progress(sent, total)``.

        Sent once: an upload is not retried (a repeat would store the file twice).
        """
        # UploadBody stats the file: off the event loop, like the reads.
        body = await anyio.to_thread.run_sync(UploadBody, Path(path), name)
        headers = headers_for(self.token, body.headers)
        # Through the breaker like any call, but never resent: a streamed body is gone.
        once = self.policy.start("POST", {})
        if not once.admit():
            raise breaker_open(self.url, self.policy)
        try:
            response = await self._http.post(
                f"{calls.API}/files",
                content=body.async_chunks(progress),
                headers=headers,
                timeout=UPLOAD_TIMEOUT,
            )
        except httpx.TransportError as error:
            once.after_transport_error()
            raise unreachable(self.url, error) from error
        once.after_response(response.status_code)
        return self._answer(calls.upload_answer, response)

    async def list_files(self) -> list[PrintFile]:
        """The caller's files, newest first."""
        return await self.send(calls.list_files())

    async def get_file(self, file_id: str) -> PrintFile:
        """One of the caller's files."""
        return await self.send(calls.get_file(file_id))

    # -- jobs ------------------------------------------------------------------------------------

    async def create_job(
        self,
        file_id: str,
        *,
        printer_id: str | None = None,
        model: str | None = None,
        pool_id: str | None = None,
        start_within_s: int | None = None,
        notify_completion: bool = False,
        idempotency_key: str | None = None,
        priority: int = 0,
        copies: int = 1,
        material: str | calls.FromFile | None = calls.FROM_FILE,
        nozzle_um: int | calls.FromFile | None = calls.FROM_FILE,
    ) -> Job:
        """Print an uploaded file on a printer, on any printer of a ``model``, or on any
        printer of one of your pools (``pool_id``); ``copies`` of it as one batch (the first
        copy is returned; ``list_jobs(batch_id=...)`` lists them all).

        ``priority`` (-100..100) orders the queue. ``material`` and ``nozzle_um`` (micrometres)
        left out come from the file's slicer metadata; None means any. Always sent with an
        idempotency key (a fresh one unless given), so a retry after a lost answer returns the
        job the first attempt created instead of a second print.
        """
        return await self.send(
            calls.create_job(
                file_id,
                printer_id=printer_id,
                model=model,
                pool_id=pool_id,
                start_within_s=start_within_s,
                notify_completion=notify_completion,
                idempotency_key=idempotency_key,
                priority=priority,
                copies=copies,
                material=material,
                nozzle_um=nozzle_um,
            )
        )

    async def list_jobs(
        self,
        *,
        states: list[JobState] | None = None,
        printer_id: str | None = None,
        batch_id: str | None = None,
        older_than: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """The caller's jobs, newest first; page with ``older_than`` (the last id seen)."""
        call = calls.list_jobs(
            states=states,
            printer_id=printer_id,
            batch_id=batch_id,
            older_than=older_than,
            limit=limit,
        )
        return await self.send(call)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Reorder the queue: a waiting job's new priority (-100..100, higher first)."""
        return await self.send(calls.set_priority(job_id, priority))

    async def get_job(self, job_id: str) -> JobDetail:
        """One job with its audit trail."""
        return await self.send(calls.get_job(job_id))

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job."""
        return await self.send(calls.cancel_job(job_id))

    async def pause_job(self, job_id: str) -> Job:
        """Pause a printing job."""
        return await self.send(calls.pause_job(job_id))

    async def resume_job(self, job_id: str) -> Job:
        """Resume a paused job."""
        return await self.send(calls.resume_job(job_id))

    # -- pools -----------------------------------------------------------------------------------

    async def list_pools(self) -> list[Pool]:
        """Your pools, by name."""
        return await self.send(calls.list_pools())

    async def get_pool(self, pool_id: str) -> Pool:
        """One of your pools."""
        return await self.send(calls.get_pool(pool_id))

    async def create_pool(self, name: str, printer_ids: list[str] | None = None) -> Pool:
        """Make a pool of printers you own or operate."""
        return await self.send(calls.create_pool(name, printer_ids or []))

    async def update_pool(self, pool_id: str, name: str, printer_ids: list[str]) -> Pool:
        """Rename a pool and replace its printers."""
        return await self.send(calls.update_pool(pool_id, name, printer_ids))

    async def delete_pool(self, pool_id: str) -> Pool:
        """Delete a pool (refused, Conflict, while jobs not yet ended target it)."""
        return await self.send(calls.delete_pool(pool_id))

    # -- alerts, health, events ------------------------------------------------------------------

    async def list_alerts(self, *, unacked: bool = False) -> list[Alert]:
        """Alerts of the printers the caller can see, newest first."""
        return await self.send(calls.list_alerts(unacked=unacked))

    async def ack_alert(self, alert_id: str) -> Alert:
        """Acknowledge an alert."""
        return await self.send(calls.ack_alert(alert_id))

    async def stats(
        self,
        *,
        by: Literal["printer", "user", "model", "pool"] = "printer",
        since: int | str | None = None,
        until: int | str | None = None,
    ) -> Stats:
        """Statistics of the caller's ended jobs (their own, and those on printers they own)
        per printer, user or model, ended in ``[since, until)`` (cloud ms or ISO 8601)."""
        return await self.send(calls.stats(by=by, since=since, until=until))

    async def list_channels(self) -> list[Channel]:
        """The caller's notification channels."""
        return await self.send(calls.list_channels())

    async def add_channel(
        self, kind: ChannelKind, target: str, *, secret: str | None = None
    ) -> Channel:
        """Send alerts and job ends to a webhook (signed with ``secret``) or an Apprise URL."""
        return await self.send(calls.add_channel(kind, target, secret))

    async def remove_channel(self, channel_id: str) -> Channel:
        """Stop sending to a channel."""
        return await self.send(calls.remove_channel(channel_id))

    async def test_channel(self, channel_id: str) -> NotificationSent:
        """Send a ``test`` notification to a channel now."""
        return await self.send(calls.test_channel(channel_id))

    async def deliveries(self, channel_id: str, *, limit: int = 100) -> list[Delivery]:
        """A channel's recent deliveries: attempts, delivered or dead-lettered, last error."""
        return await self.send(calls.deliveries(channel_id, limit=limit))

    async def health(self) -> Health:
        """The server's health (returned, not raised, when it is unavailable)."""
        return await self.send(calls.health())

    async def events(
        self,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncGenerator[StreamEvent]:
        """The live event stream, one block at a time, for as long as the caller iterates.

        With ``reconnect``, a dropped stream is reopened after a jittered wait with
        ``Last-Event-ID``, so nothing the server still remembers is missed; a ``resync`` or
        ``dropped`` block says to refetch state. Gives up with :class:`Unreachable` after
        repeated failed connections. ``on_open`` is called when a connection's first block
        has arrived: from then on, everything the server publishes reaches this stream.
        """
        cursor = StreamCursor(last_event_id=last_event_id)
        again = Reconnection(self.policy.backoff.delay)
        while True:
            extra = {"Accept": "text/event-stream"}
            if cursor.last_event_id:
                extra["Last-Event-ID"] = cursor.last_event_id
            floor: float | None = None
            ended = False
            try:
                async with self._http.stream(
                    "GET",
                    f"{calls.API}/events",
                    headers=headers_for(self.token, extra),
                    timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=STREAM_READ_TIMEOUT),
                ) as response:
                    if response.is_success:
                        again.connected()
                        cursor.connected()
                        opened = False
                        # A 200 that is not text/event-stream (a proxy's page) raises
                        # httpx-sse's SSEError, a TransportError: a failed connection.
                        async for block in EventSource(response).aiter_sse():
                            if (event := cursor.read(block)) is not None:
                                yield event
                            if not opened:
                                opened = True
                                if on_open is not None:
                                    on_open()
                        ended = True
                        error: PrintfleetError = Unreachable(f"{self.url} ended the event stream")
                        floor = cursor.retry_ms / 1000 if cursor.retry_ms else None
                    else:
                        await response.aread()
                        error = calls.error_for(response, now=self.policy.wall_clock())
                        if not isinstance(error, Overloaded | RateLimited | ServerError):
                            raise error
                        floor = getattr(error, "retry_after", None)
            except httpx.TransportError as failure:
                error = unreachable(self.url, failure)
            if not reconnect:
                if ended:
                    return
                raise error
            wait = again.next_wait(floor)
            if wait is None:
                raise error
            await self._sleep(wait)

    # -- maintenance -------------------------------------------------------------------------------

    async def maintenance(self, printer: str) -> list[MaintenancePart]:
        """A printer's parts (nozzle, belts): print hours since service, interval, due."""
        return await self.send(calls.maintenance(printer))

    async def mark_serviced(self, printer: str, part: str) -> list[MaintenancePart]:
        """Say ``part`` of ``printer`` was serviced now (owner or operator); its hours start
        again and its reminder is resolved. The printer's parts after it."""
        return await self.send(calls.mark_serviced(printer, part))

    async def set_maintenance_interval(
        self, printer: str, part: str, interval_h: float | None
    ) -> list[MaintenancePart]:
        """Service ``part`` of ``printer`` every ``interval_h`` print hours (owner; None: the
        cloud's default). The printer's parts after it."""
        return await self.send(calls.set_maintenance_interval(printer, part, interval_h))

    # -- materials at the printer -------------------------------------------------------------

    async def set_material(
        self, printer_id: str, slot: int, material: str | None, *, colour: str | None = None
    ) -> CommandSent:
        """Say what filament ``slot`` holds (upper case, e.g. ``"PETG"``; None: empty), with its
        ``colour`` as ``"#rrggbb"`` (operator role). The printer records it and reports it back;
        sent now or not at all (503)."""
        return await self.send(materials.set_material(printer_id, slot, material, colour))

    async def set_nozzle(self, printer_id: str, nozzle_um: int) -> CommandSent:
        """Say which nozzle is fitted, in micrometres (400 is 0.4 mm; operator role)."""
        return await self.send(materials.set_nozzle(printer_id, nozzle_um))
