"""The cloud service's one wiring place: :func:`create_app`, whose lifespan builds everything
the cloud runs — store, signing key, broker, service, MQTT core — and owns it, from
:class:`~printfleet.cloud.settings.Settings` (importable from here too).

``printfleet serve`` runs the app with uvicorn; tests run it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from printfleet import __version__
from printfleet.broker_address import BrokerAddress
from printfleet.cloud import api
from printfleet.cloud.admission import (
    EXEMPT_PREFIXES,
    AdmissionCollector,
    AdmissionGate,
    AdmissionLimits,
    AdmissionMiddleware,
    BodyLimitMiddleware,
)
from printfleet.cloud.api import ApiContext, CloudMetrics
from printfleet.cloud.api.events import EVENTS_PATH
from printfleet.cloud.api.uploads import UPLOAD_PATH
from printfleet.cloud.broker_auth import CLOUD_USER, cloud_replica
from printfleet.cloud.callers import VerifiedCallers
from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.dispatch.dispatcher import StoredJob, cloud_ms
from printfleet.cloud.dispatch.fleet_view import Ingested
from printfleet.cloud.dispatch.store_jobs import StoreJobs, StoreRoster
from printfleet.cloud.embedded_broker import EmbeddedBroker, embedded_broker
from printfleet.cloud.files import (
    ArchiveLimits,
    FileStorage,
    UploadChecks,
)
from printfleet.cloud.login_backoff import BackoffPolicy, LoginBackoff
from printfleet.cloud.migrations import upgrade
from printfleet.cloud.mosquitto_auth import MosquittoAuthSync
from printfleet.cloud.notify import (
    AppriseSender,
    DeliveryOutcome,
    EventBus,
    Notifier,
    OutboundPolicy,
    WebhookSender,
    outbound_client,
)
from printfleet.cloud.notify.announcer import CATCH_UP_S, Announcer
from printfleet.cloud.service import (
    CloudService,
    ServiceSettings,
)
from printfleet.cloud.settings import Settings
from printfleet.cloud.store import (
    JobRecord,
    PrinterRecord,
    Store,
    StoreError,
    new_id,
    open_store,
)
from printfleet.cloud.store.engine import make_sqlite_private
from printfleet.cloud.store.sealing import SECRETS_KEY_FILE, load_or_create_secret_box
from printfleet.cloud.telemetry_history import HistoryCollector, HistoryPolicy, TelemetryHistory
from printfleet.cloud.usecases.maintenance import MaintenanceReminders
from printfleet.log_redaction import redact_tokens_in_logs
from printfleet.protocol.dispatch import DispatchPolicy, JobChange
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import CommandType, RejectedEvent
from printfleet.protocol.signing import CommandSigner

__all__ = ["KEY_FILE", "Settings", "create_app", "load_or_create_signer", "running_cloud"]

log = logging.getLogger(__name__)

KEY_FILE = "cloud-signing.key"
"""The cloud's Ed25519 private key in the data directory: 32 raw bytes, mode 0600. Printers
pin its public half; replicas must share the file."""


# ---------------------------------------------------------------------------------------------
# The signing key.


def load_or_create_signer(path: Path) -> CommandSigner:
    """The cloud's signing key from ``path``, made on first start (mode 0600). Blocking."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _create_signer(path)
    if len(raw) != 32:  # noqa: PLR2004 - an Ed25519 private key's size
        msg = f"{path} is not a printfleet signing key (32 raw bytes); move it away or restore it"
        raise ValueError(msg)
    if path.stat().st_mode & 0o077:
        log.warning(
            "%s is readable by others: chmod 600 it; whoever reads it can command printers", path
        )
    return CommandSigner.from_private_bytes(raw)


def _create_signer(path: Path) -> CommandSigner:
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = CommandSigner.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(signer.private_bytes())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # link() fails if the key exists: two replicas starting at once on a shared directory
        # end up with the same key, whichever wrote first, and never a half-written one.
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_signer(path)
    finally:
        temporary.unlink()
    log.info("made a new cloud signing key in %s", path)
    return signer


def _make_private(data_dir: Path, url: str) -> None:
    """The data directory 0700 and a SQLite store's files 0600: they hold the signing key, the
    secrets key, the database and uploaded files, none of them for other users. Blocking."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private_tree(data_dir, children=False)
    for path in make_sqlite_private(url):
        log.warning("%s was readable by other users; it is 0600 now", path)


def _make_private_tree(directory: Path, *, children: bool = True) -> None:
    # Only directories: every file the cloud writes under them is made 0600 already. Not the
    # data directory's other children: an operator may keep something there for another user.
    below = [child for child in directory.iterdir() if child.is_dir()] if children else []
    for path in (directory, *below):
        mode = path.stat().st_mode
        if mode & 0o077:
            try:
                path.chmod(mode & 0o700)
            except PermissionError:
                log.warning("%s is readable by other users, and not ours to chmod 700", path)
            else:
                log.info("%s was open to other users; it is 0700 now", path)


def _file_link_secret(signer: CommandSigner) -> bytes:
    # Derived from the signing key rather than random per process, so links stay valid across
    # restarts and every replica (sharing the key) accepts every other's links.
    return hmac.new(signer.private_bytes(), b"printfleet file links", hashlib.sha256).digest()


def _for_printers(broker: BrokerAddress) -> str:
    # Printers get credentials of their own; the cloud's must not travel in their configs.
    return f"{'mqtts' if broker.tls else 'mqtt'}://{broker.host}:{broker.port}"


# ---------------------------------------------------------------------------------------------
# What the MQTT side tells the rest of the cloud.


class _CoreListeners:
    """Callbacks CloudCore and the service make: job changes, printer messages, deliveries."""

    def __init__(
        self,
        announcer: Announcer,
        metrics: CloudMetrics,
        history: TelemetryHistory,
        reminders: MaintenanceReminders,
    ) -> None:
        self.announcer = announcer
        self.metrics = metrics
        self.history = history
        self.reminders = reminders

    async def job_changed(self, change: JobChange, job: StoredJob) -> None:
        """A dispatcher-made change (expired, rejected, started, ended, ...)."""
        view = change.job
        self.metrics.job_changes.labels(view.state.value).inc()
        if change.event is JobEvent.STARTED:
            self.metrics.dispatch_latency.observe(max(0, cloud_ms() - view.created_at) / 1000)
        # The dispatcher saved the change as the job's next version (compare-and-set).
        await self.announcer.job_changed(
            view,
            change.event,
            owner=job.owner,
            name=job.file_name,
            version=job.version + 1,
            notify_completion=job.notify_completion,
        )
        # An ended print adds print hours: a part may have fallen due.
        await self.reminders.job_changed(view, change.event)

    async def job_told(self, job: JobRecord, event: JobEvent | None) -> None:
        """A person submitted (``event`` None) or cancelled a job through the service."""
        if event is not None:
            self.metrics.job_changes.labels(job.view.state.value).inc()
        await self.announcer.job_changed(
            job.view,
            event,
            owner=job.owner_id,
            name=job.name,
            version=job.version,
            notify_completion=job.notify_completion,
        )
        # A print a person cancelled adds its hours too.
        await self.reminders.job_changed(job.view, event)

    async def plate_needed(self, job: StoredJob, printer_id: str) -> None:
        """A job waits on a plate a person must confirm (S5): ask them, once."""
        await self.announcer.plate_needed(job.view.id, printer_id)

    async def ingested(self, message: Ingested) -> None:
        """A printer message: refused starts counted; alerts, state and progress told (S6);
        telemetry kept as history (never waiting on the store)."""
        if message.telemetry is not None:
            self.history.offer(message.telemetry)
        event = message.event
        if isinstance(event, RejectedEvent) and event.body.command_type == CommandType.START:
            self.metrics.rejected_starts.labels(event.body.reason.value).inc()
        await self.announcer.printer_message(
            message.printer_id,
            event=event,
            telemetry=message.telemetry,
            presence=message.presence,
        )


# ---------------------------------------------------------------------------------------------
# Wiring.


@contextlib.asynccontextmanager
async def running_cloud(
    settings: Settings, *, callers: VerifiedCallers | None = None
) -> AsyncIterator[ApiContext]:
    """Build the whole cloud, run its MQTT core, and take it all down on exit. ``callers`` is
    admission control's registry of verified tokens, which the API keeps up to date."""
    data_dir = settings.data_dir
    url = settings.store_url()
    await asyncio.to_thread(_make_private, data_dir, url)
    signer = await asyncio.to_thread(load_or_create_signer, data_dir / KEY_FILE)
    secrets = await asyncio.to_thread(load_or_create_secret_box, data_dir / SECRETS_KEY_FILE)
    await upgrade(url, secrets=secrets)
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(
            url,
            pool_size=settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
            secrets=secrets,
        )
        stack.push_async_callback(store.close)
        # Rows kept as given by a tool without the key, or under a key since rotated; a value
        # no key here opens (a replica with another key file) stops the start, saying so.
        if sealed := await store.channels.seal_secrets():
            log.info("sealed the secrets of %d notification channels", sealed)
        broker_url, own_broker = await _broker(stack, settings)
        broker = BrokerAddress.parse(broker_url)
        files = FileStorage(
            data_dir / "files",
            store.files,
            max_bytes=settings.max_upload_bytes,
            limits=ArchiveLimits(
                max_members=settings.max_archive_members,
                max_member_bytes=settings.max_member_unpacked_bytes,
                max_total_bytes=settings.max_unpacked_bytes,
                max_ratio=settings.max_compression_ratio,
            ),
            checks=UploadChecks(settings.upload_check_workers, settings.upload_check_wait_s),
        )
        stack.callback(files.close)
        await files.prepare()
        await asyncio.to_thread(_make_private_tree, files.root)
        issuer = CommandIssuer(signer, new_id)
        service = CloudService(
            store,
            signer,
            issuer,
            settings=ServiceSettings(
                public_url=settings.public_url.rstrip("/"),
                broker_url_for_printers=settings.printer_broker_url or _for_printers(broker),
                token_lifetime_s=settings.token_lifetime_s,
                cost_rates=settings.cost_rates(),
                maintenance_intervals=settings.maintenance_intervals(),
            ),
            file_secret=_file_link_secret(signer),
            outbound=outbound_policy(settings),
        )
        # The dispatcher asks for models synchronously; presence reports carry them too.
        models = {printer.id: printer.model for printer in await store.printers.all()}

        def file_url(job: StoredJob, printer_id: str) -> str:
            # Every job made through the API has a file; a link to none fails the stage
            # cleanly (the printer rejects it, the job says why) instead of the whole tick.
            return service.file_links.link_for(job.file_id or f"missing-{job.view.id}")

        auth_sync = await _start_auth_sync(stack, store, settings, broker)

        def printer_registered(printer: PrinterRecord) -> None:
            models[printer.id] = printer.model
            if auth_sync is not None:
                auth_sync.request()

        metrics = CloudMetrics()
        if auth_sync is not None:
            metrics.watch_broker_accounts(lambda: len(auth_sync.refused))
        announcer = await _start_notifications(stack, store, settings, metrics)
        service.channels.sender = announcer
        history = TelemetryHistory(
            store.telemetry,
            HistoryPolicy(
                interval_s=settings.telemetry_history_interval_s,
                retention_s=settings.telemetry_retention_s,
            ),
            clock_ms=cloud_ms,
        )
        metrics.registry.register(HistoryCollector(history))
        recording = _started(history.run(), "printfleet telemetry history")
        stack.push_async_callback(_cancelled, recording)
        listeners = _CoreListeners(
            announcer,
            metrics,
            history,
            MaintenanceReminders(
                store.maintenance, announcer, intervals=settings.maintenance_intervals()
            ),
        )
        service.jobs.listener = listeners.job_told
        core = CloudCore(
            broker,
            StoreJobs(store),
            issuer,
            roster=StoreRoster(store),
            file_url=file_url,
            on_change=listeners.job_changed,
            on_ingested=listeners.ingested,
            on_plate_needed=listeners.plate_needed,
            model_of=models.get,
            probe_interval_s=settings.probe_interval_s,
            policy=DispatchPolicy(max_heating=settings.max_heatups or None),
            local_jobs=store.audit,
        )
        service.live.core = core
        metrics.watch(core)
        task = asyncio.create_task(core.run(), name="printfleet cloud core")
        task.add_done_callback(_report_end)
        try:
            yield ApiContext(
                service=service,
                store=store,
                files=files,
                core=core,
                metrics=metrics,
                open_registration=settings.open_registration,
                printer_registered=printer_registered,
                announcer=announcer,
                callers=callers if callers is not None else VerifiedCallers(),
                logins=LoginBackoff(
                    BackoffPolicy(
                        free_failures=settings.login_free_failures,
                        max_delay_s=settings.login_backoff_max_s,
                        forget_after_s=max(900.0, settings.login_backoff_max_s),
                    )
                ),
                embedded_broker=own_broker,
            )
        finally:
            # Dispatch stops first; the stack then ends the event streams, lets deliveries
            # under way finish, and closes the store last.
            await _cancelled(task)


async def _broker(
    stack: contextlib.AsyncExitStack, settings: Settings
) -> tuple[str, EmbeddedBroker | None]:
    """The configured broker's URL, or an embedded broker's, started on ``stack``."""
    if settings.broker_url is not None:
        return settings.broker_url, None
    own = await stack.enter_async_context(embedded_broker())
    return own.url, own


async def _start_auth_sync(
    stack: contextlib.AsyncExitStack, store: Store, settings: Settings, broker: BrokerAddress
) -> MosquittoAuthSync | None:
    """With an auth directory set: broker accounts written now and after each provisioning."""
    if settings.mosquitto_auth_dir is None:
        return None
    own = cloud_replica(broker.username)
    if own is None or not broker.password:
        msg = (
            f"PRINTFLEET_MOSQUITTO_AUTH_DIR needs the cloud's own broker login in the broker "
            f"URL: mqtt://{CLOUD_USER}:PASSWORD@host:port (or {CLOUD_USER}.REPLICA)"
        )
        raise ValueError(msg)
    if settings.mosquitto_auth_dir.absolute().is_relative_to(settings.data_dir.absolute()):
        log.warning(
            "%s is inside the data directory, which only the cloud's user may enter: Mosquitto, "
            "running as another user, cannot read the files there",
            settings.mosquitto_auth_dir,
        )
    replicas = {*settings.mosquitto_cloud_replicas, *([own] if own else [])}
    sync = MosquittoAuthSync(
        settings.mosquitto_auth_dir,
        store,
        cloud_password=broker.password,
        pid_file=settings.mosquitto_pid_file,
        cloud_replicas=sorted(replicas),
    )
    await sync.sync()
    task = _started(sync.run(), "printfleet broker accounts")
    stack.push_async_callback(_cancelled, task)
    return sync


async def _start_notifications(
    stack: contextlib.AsyncExitStack, store: Store, settings: Settings, metrics: CloudMetrics
) -> Announcer:
    """The event bus, the notifier and the delivery resender, running until ``stack`` closes;
    job ends a crash left untold are told before this returns (S7)."""
    bus = EventBus()
    outbound = outbound_policy(settings)
    http = await stack.enter_async_context(outbound_client(outbound))
    announcers: list[Announcer] = []

    async def delivery_ended(outcome: DeliveryOutcome) -> None:
        outcome_label = "delivered" if outcome.delivered else "failed"
        metrics.notifications.labels(outcome.channel.kind.value, outcome_label).inc()
        await announcers[0].delivery_ended(outcome)

    notifier = Notifier(
        bus,
        webhooks=WebhookSender(http),
        apprise=AppriseSender(policy=outbound),
        on_outcome=delivery_ended,
    )
    announcer = Announcer(store, notifier, delivery_lease_s=settings.delivery_lease_s)
    announcers.append(announcer)
    metrics.watch_streams(bus)
    notifying = _started(notifier.run(), "printfleet notifier")
    stack.push_async_callback(_drain, notifier, notifying)
    resending = _started(announcer.resend_unsettled_forever(), "printfleet delivery resender")
    stack.push_async_callback(_cancelled, resending)
    stack.callback(bus.close)  # first at exit: open event streams end
    try:
        await announcer.catch_up(await store.jobs.ended_since(cloud_ms() - CATCH_UP_MS))
    except StoreError:
        log.exception("could not check recent job ends for untold submitters")
    return announcer


def outbound_policy(settings: Settings) -> OutboundPolicy:
    """Where this cloud's channels may connect: public addresses, the operator's allow-list,
    never the cloud's own port."""
    return OutboundPolicy(settings.outbound_allow, own_urls=[settings.public_url])


def _started(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(_report_end)
    return task


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # Nothing dispatches (or notifies) any more: say so as loudly as possible.
        log.critical("%s stopped", task.get_name(), exc_info=task.exception())


CATCH_UP_MS = int(CATCH_UP_S * 1000)
NOTIFY_DRAIN_S = 5.0
"""At shutdown, how long deliveries already under way may take to finish."""


async def _drain(notifier: Notifier, task: asyncio.Task[None]) -> None:
    notifier.close()
    try:
        async with asyncio.timeout(NOTIFY_DRAIN_S):
            await asyncio.shield(task)
    except TimeoutError:
        # Their delivery rows stay pending in the store, for people to see.
        log.warning("%d notification deliveries cut short by the shutdown", notifier.in_flight)
        await _cancelled(task)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The cloud as an ASGI app; ``settings`` default to :meth:`Settings.from_env`."""
    chosen = settings if settings is not None else Settings.from_env()
    callers = VerifiedCallers()
    gate = AdmissionGate(
        AdmissionLimits(
            max_concurrent=chosen.max_concurrent_requests,
            rate_per_s=chosen.rate_limit_per_s,
            burst=chosen.rate_limit_burst,
            # An event stream stays open for hours: counted, a few dashboards would hold every
            # slot and shut the API. Streams have their own bound (16 per user, 429 beyond).
            exempt=(*EXEMPT_PREFIXES, EVENTS_PATH),
        ),
        callers=callers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_cloud(chosen, callers=callers) as context:
            app.state.printfleet = context
            if chosen.admission:
                context.metrics.registry.register(AdmissionCollector(gate))
            try:
                yield
            finally:
                app.state.printfleet = None

    redact_tokens_in_logs()  # printers' file links in the access log
    app = FastAPI(
        title="printfleet",
        version=__version__,
        summary="A print cloud for fleets of 3D printers that never starts a print nobody "
        "asked for.",
        lifespan=lifespan,
    )
    api.install(app)
    # Each add_middleware wraps what is there: the last added sees a request first.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=chosen.max_body_bytes, streamed={("POST", UPLOAD_PATH)}
    )
    if chosen.admission:
        app.add_middleware(AdmissionMiddleware, gate=gate)
    if chosen.trusted_proxies:
        # Only now is a forwarded address believed, and only from these peers; the server
        # itself must trust none (printfleet serve runs uvicorn with proxy_headers=False).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=chosen.trusted_proxy_list())
    return app
