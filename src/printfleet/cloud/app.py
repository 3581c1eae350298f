"""The cloud service's one wiring place: :class:`Settings`, and :func:`create_app`, whose lifespan
builds everything the cloud runs — store, signing key, broker, service, MQTT core — and owns it.

``printfleet serve`` runs the app with uvicorn; tests run it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, field_validator
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from printfleet import __version__
from printfleet.broker_address import BrokerAddress
from printfleet.cloud import api
from printfleet.cloud.admission import (
    DEFAULT_MAX_BODY_BYTES,
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
from printfleet.cloud.broker_auth import CLOUD_USER, cloud_replica, cloud_username
from printfleet.cloud.callers import VerifiedCallers
from printfleet.cloud.core import CloudCore
from printfleet.cloud.dispatcher import StoredJob, cloud_ms
from printfleet.cloud.embedded_broker import embedded_broker
from printfleet.cloud.files import (
    DEFAULT_CHECK_WAIT_S,
    DEFAULT_CHECK_WORKERS,
    DEFAULT_MAX_UPLOAD_BYTES,
    ArchiveLimits,
    FileStorage,
    UploadChecks,
)
from printfleet.cloud.fleet_view import Ingested
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
from printfleet.cloud.notify.announcer import CATCH_UP_S, DELIVERY_LEASE_S, Announcer
from printfleet.cloud.notify.outbound import parse_allow_list
from printfleet.cloud.service import (
    MAX_TOKEN_LIFETIME_S,
    MIN_TOKEN_LIFETIME_S,
    TOKEN_LIFETIME_S,
    CloudService,
    ServiceSettings,
)
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
from printfleet.cloud.store_jobs import StoreJobs, StoreRoster
from printfleet.cloud.telemetry_history import HistoryCollector, HistoryPolicy, TelemetryHistory
from printfleet.log_redaction import redact_tokens_in_logs
from printfleet.protocol.dispatch import JobChange
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobEvent
from printfleet.protocol.messages import CommandType, RejectedEvent
from printfleet.protocol.signing import CommandSigner

__all__ = ["KEY_FILE", "Settings", "create_app", "load_or_create_signer", "running_cloud"]

log = logging.getLogger(__name__)

_ARCHIVE = ArchiveLimits()

KEY_FILE = "cloud-signing.key"
"""The cloud's Ed25519 private key in the data directory: 32 raw bytes, mode 0600. Printers
pin its public half; replicas must share the file."""


class Settings(BaseModel):
    """How a cloud process runs; :meth:`from_env` reads ``PRINTFLEET_*`` variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ENVIRONMENT: ClassVar[Mapping[str, str]] = {
        "data_dir": "PRINTFLEET_DATA_DIR",
        "database_url": "PRINTFLEET_DATABASE_URL",
        "broker_url": "PRINTFLEET_BROKER_URL",
        "printer_broker_url": "PRINTFLEET_PRINTER_BROKER_URL",
        "public_url": "PRINTFLEET_PUBLIC_URL",
        "max_upload_bytes": "PRINTFLEET_MAX_UPLOAD_BYTES",
        "max_archive_members": "PRINTFLEET_MAX_ARCHIVE_MEMBERS",
        "max_member_unpacked_bytes": "PRINTFLEET_MAX_MEMBER_UNPACKED_BYTES",
        "max_unpacked_bytes": "PRINTFLEET_MAX_UNPACKED_BYTES",
        "max_compression_ratio": "PRINTFLEET_MAX_COMPRESSION_RATIO",
        "upload_check_workers": "PRINTFLEET_UPLOAD_CHECK_WORKERS",
        "upload_check_wait_s": "PRINTFLEET_UPLOAD_CHECK_WAIT_S",
        "open_registration": "PRINTFLEET_OPEN_REGISTRATION",
        "admission": "PRINTFLEET_ADMISSION",
        "max_concurrent_requests": "PRINTFLEET_MAX_CONCURRENT_REQUESTS",
        "rate_limit_per_s": "PRINTFLEET_RATE_LIMIT_PER_S",
        "rate_limit_burst": "PRINTFLEET_RATE_LIMIT_BURST",
        "max_body_bytes": "PRINTFLEET_MAX_BODY_BYTES",
        "trusted_proxies": "PRINTFLEET_TRUSTED_PROXIES",
        "login_free_failures": "PRINTFLEET_LOGIN_FREE_FAILURES",
        "login_backoff_max_s": "PRINTFLEET_LOGIN_BACKOFF_MAX_S",
        "db_pool_size": "PRINTFLEET_DB_POOL_SIZE",
        "db_pool_timeout_s": "PRINTFLEET_DB_POOL_TIMEOUT_S",
        "telemetry_history_interval_s": "PRINTFLEET_TELEMETRY_HISTORY_INTERVAL_S",
        "telemetry_retention_s": "PRINTFLEET_TELEMETRY_RETENTION_S",
        "mosquitto_auth_dir": "PRINTFLEET_MOSQUITTO_AUTH_DIR",
        "mosquitto_pid_file": "PRINTFLEET_MOSQUITTO_PID_FILE",
        "mosquitto_cloud_replicas": "PRINTFLEET_MOSQUITTO_CLOUD_REPLICAS",
        "token_lifetime_s": "PRINTFLEET_TOKEN_LIFETIME_S",
        "outbound_allow": "PRINTFLEET_OUTBOUND_ALLOW",
    }
    """Setting -> environment variable."""

    data_dir: Path = Path(".printfleet/cloud")
    """The signing key, the secrets key, uploaded files, and the SQLite database unless one is
    given; made private to the cloud's user at start (0700, its files 0600)."""
    database_url: str | None = None
    """SQLite or PostgreSQL (``postgresql+asyncpg://...``); default a SQLite file in data_dir."""
    broker_url: str | None = None
    """``mqtt://user:pass@host:1883`` for the cloud itself; none: an embedded broker on
    127.0.0.1 (one machine only: it lets anyone on the machine in)."""
    printer_broker_url: str | None = None
    """The broker URL written into agent configs; default the cloud's, without credentials."""
    public_url: str = "http://127.0.0.1:8000"
    """Where printers reach this server to fetch files (scheme, host, port, no trailing /)."""
    max_upload_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_UPLOAD_BYTES
    max_archive_members: Annotated[int, Field(gt=0)] = _ARCHIVE.max_members
    """Files a ``.gcode.3mf`` may hold (1024); more: 422."""
    max_member_unpacked_bytes: Annotated[int, Field(gt=0)] = _ARCHIVE.max_member_bytes
    """What one file in a ``.gcode.3mf`` may unpack to (256 MiB); more: 413."""
    max_unpacked_bytes: Annotated[int, Field(gt=0)] = _ARCHIVE.max_total_bytes
    """What a whole ``.gcode.3mf`` may unpack to (512 MiB); more: 413."""
    max_compression_ratio: Annotated[float, Field(ge=1)] = _ARCHIVE.max_ratio
    """Unpacked over packed size, per file in a ``.gcode.3mf`` and for all of it (100); more:
    422, a decompression bomb. Each cap is checked before inflating and while inflating."""
    upload_check_workers: Annotated[int, Field(ge=1)] = DEFAULT_CHECK_WORKERS
    """Uploads whose contents are checked at once (2), in threads of their own, apart from the
    default executor that password hashing uses."""
    upload_check_wait_s: Annotated[float, Field(ge=0)] = DEFAULT_CHECK_WAIT_S
    """How long an upload waits for a check turn (10 s) before 503 with Retry-After."""
    open_registration: bool = False
    """Anyone may create an account. Off: only the first account can be made over HTTP."""
    probe_interval_s: Annotated[float, Field(gt=0)] = 2.0
    """How often the link proves itself through the broker (S8)."""
    delivery_lease_s: Annotated[float, Field(gt=0)] = DELIVERY_LEASE_S
    """A notification delivery its sender left unsettled this long (it died) is sent again."""
    admission: bool = True
    """Admission control (cloud/admission.py): shed load early instead of queueing it. Off
    only to measure what it prevents (``printfleet bench overload``)."""
    max_concurrent_requests: Annotated[int, Field(ge=1)] = 8
    """API requests in progress at once; one more gets 503 with a jittered Retry-After. About
    the pool size plus a few: more only queue for connections (``printfleet bench overload``:
    8 halves the p50 under overload compared with 16, at the same goodput)."""
    rate_limit_per_s: Annotated[float, Field(gt=0)] = 20.0
    """Sustained API requests per second per account (per client address for requests without
    a token the API has verified); over: 429."""
    rate_limit_burst: Annotated[float, Field(ge=1)] = 40.0
    """Requests an account (or address) may send at once after being quiet."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_BODY_BYTES
    """The largest request body any route but uploads takes (64 KiB); larger: 413, refused
    before it is read. Uploads have their own limit, ``max_upload_bytes``."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (``10.0.0.5,fd00::/8``) of reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed. Empty (the default): none is,
    and rate limits and login backoff count the address that connected."""
    login_free_failures: Annotated[int, Field(ge=1)] = 5
    """Wrong passwords in a row an account, or an address, may have before it must wait."""
    login_backoff_max_s: Annotated[float, Field(ge=1)] = 300.0
    """The longest wait after wrong passwords (it starts at 1 s and doubles per failure)."""
    db_pool_size: Annotated[int, Field(ge=1)] = 5
    """Database connections. Small on purpose: more lets more requests wait on the database."""
    db_pool_timeout_s: Annotated[float, Field(gt=0)] = 1.0
    """How long a request waits for a free connection before it is answered 503."""
    telemetry_history_interval_s: Annotated[float, Field(gt=0)] = 10.0
    """Telemetry history keeps at most one snapshot per printer this often (the charts)."""
    telemetry_retention_s: Annotated[float, Field(gt=0)] = 24 * 3600.0
    """Telemetry snapshots older than this are deleted."""
    mosquitto_auth_dir: Path | None = None
    """Where to keep an external Mosquitto's ``passwords`` and ``acl`` files in step with the
    provisioned printers (cloud/mosquitto_auth.py); needs a broker_url with the cloud's
    credentials, user ``printfleet-cloud``."""
    mosquitto_pid_file: Path | None = None
    """Mosquitto's pid file: it is sent SIGHUP to reload the files after each change."""
    mosquitto_cloud_replicas: tuple[str, ...] = ()
    """Other cloud replicas on the same broker (comma-separated names in the environment): each
    is written an account ``printfleet-cloud.{name}`` with the cloud's password, and logs in
    with it. Mosquitto's ``use_username_as_clientid`` makes a username its client id, so
    replicas sharing one would push each other off the broker."""
    token_lifetime_s: Annotated[int, Field(ge=MIN_TOKEN_LIFETIME_S, le=MAX_TOKEN_LIFETIME_S)] = (
        TOKEN_LIFETIME_S
    )
    """How long a login's API token works (30 days), and a created one that does not say."""

    @field_validator("mosquitto_cloud_replicas", mode="before")
    @classmethod
    def _replica_names(cls, value: object) -> object:
        names = value.split(",") if isinstance(value, str) else value
        if isinstance(names, list | tuple):
            names = tuple(str(name).strip() for name in names if str(name).strip())
            for name in names:
                cloud_username(name)  # ValueError: says what a name may be
        return names

    outbound_allow: tuple[str, ...] = ()
    """Internal destinations webhooks and Apprise channels may reach after all (comma- or
    space-separated in the variable): networks (``10.20.0.0/16``), addresses (``127.0.0.1``),
    host names (``hooks.lan``, every address they resolve to), each optionally with one port
    (``127.0.0.1:2525``, ``[fd00::1]:443``). Empty (the default): only public addresses.
    Loopback, private, CGNAT, link-local (cloud metadata), unique-local, multicast and
    unspecified addresses are refused otherwise, and the cloud's own port on this machine
    always (cloud/notify/outbound.py)."""

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _allow_list(cls, value: object) -> object:
        if isinstance(value, str | list | tuple):
            return parse_allow_list(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                msg = f"trusted_proxies: {entry!r} is not an IP address or network"
                raise ValueError(msg) from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        """``trusted_proxies`` as a list."""
        return _entries(self.trusted_proxies)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``PRINTFLEET_*`` variables; non-None ``overrides`` win (CLI options)."""
        source = os.environ if environ is None else environ
        values: dict[str, object] = {
            name: source[variable]
            for name, variable in cls.ENVIRONMENT.items()
            if source.get(variable)
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls.model_validate(values)

    def store_url(self) -> str:
        """The database URL, defaulting to ``data_dir/printfleet.sqlite3``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'printfleet.sqlite3'}"


def _entries(listed: str) -> list[str]:
    return [entry.strip() for entry in listed.split(",") if entry.strip()]


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
        self, announcer: Announcer, metrics: CloudMetrics, history: TelemetryHistory
    ) -> None:
        self.announcer = announcer
        self.metrics = metrics
        self.history = history

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
        broker_url = settings.broker_url
        if broker_url is None:
            broker_url = (await stack.enter_async_context(embedded_broker())).url
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
            ),
            file_secret=_file_link_secret(signer),
            outbound=outbound_policy(settings),
        )
        # The dispatcher asks for models synchronously; presence reports carry them too.
        models = {printer.id: printer.model for printer in await store.printers.all()}

        def file_url(job: StoredJob, printer_id: str) -> str:
            # Every job made through the API has a file; a link to none fails the stage
            # cleanly (the printer rejects it, the job says why) instead of the whole tick.
            return service.file_link_for(job.file_id or f"missing-{job.view.id}")

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
        listeners = _CoreListeners(announcer, metrics, history)
        service.job_listener = listeners.job_told
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
            local_jobs=store.audit,
        )
        service.core = core
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
                outbound=outbound_policy(settings),
            )
        finally:
            # Dispatch stops first; the stack then ends the event streams, lets deliveries
            # under way finish, and closes the store last.
            await _cancelled(task)


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
