"""E-mail and the other Apprise services (ntfy, Telegram, Slack...): one send per URL, off the loop.

Apprise is synchronous and blocking, so each URL is sent in a worker thread (``asyncio.to_thread``)
and all URLs of one notification go out concurrently. The plugins' socket timeouts and the
sender's own deadline bound each send; a thread cannot be cancelled, so a send that outlives the
deadline is reported as failed and left to finish.

Only the services in :data:`APPRISE_SERVICES` are used: their plugins connect through
``requests`` or ``smtplib``, so :func:`~printfleet.cloud.notify.outbound.vetted_resolution` vets
every connection they make (redirects are not followed either), and where the URL names the
server (e-mail, JSON/XML/form, self-hosted ntfy, Gotify, Mattermost, Rocket.Chat, Apprise API),
:func:`check_apprise_url` vets it when the channel is added. Other services, some of which reach
local sockets or resolve names where no policy can see, are refused.

Plain SMTP to a local relay, without TLS or a login (what a self-hosted set-up and the tests use)::

    mailto://127.0.0.1:2525?from=printfleet@example.com&to=alice@example.com&mode=insecure

``mailto://`` (not ``mailtos://``) with ``mode=insecure`` means no STARTTLS; no user and password
in the URL means no AUTH; the host is the SMTP server and ``from=`` the envelope sender. Add
``user:password@`` and use ``mailtos://`` (``mode=starttls`` or ``mode=ssl``) for a real provider.
"""

import asyncio
import contextlib
import importlib
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

import apprise
from apprise.plugins.base import NotifyBase

from printfleet.cloud.notify.model import (
    DeadLetter,
    DeadLetterSink,
    Notification,
    Severity,
    redact_url,
)
from printfleet.cloud.notify.outbound import OutboundPolicy, vetted_resolution

log = logging.getLogger(__name__)

# Apprise's e-mail plugin imports ``imghdr`` (for PGPy), which warns that it is deprecated the
# first time it is imported. Importing it here, once and quietly, keeps that warning out of every
# later plugin load, which happens in a worker thread where no filter of ours could apply it.
# Python 3.13 has no imghdr at all; Apprise then installs its own stand-in.
with warnings.catch_warnings(), contextlib.suppress(ModuleNotFoundError):
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
    importlib.import_module("imghdr")

_NOTIFY_TYPE = MappingProxyType(
    {
        Severity.CRITICAL: apprise.NotifyType.FAILURE,
        Severity.WARNING: apprise.NotifyType.WARNING,
        Severity.INFO: apprise.NotifyType.INFO,
    }
)


class Reach(StrEnum):
    """Where an Apprise service's plugin connects."""

    SMTP = "smtp"
    """The SMTP server the URL names (or its provider's, for well-known mail domains)."""
    URL_HOST = "url host"
    """The host in the URL."""
    NTFY = "ntfy"
    """ntfy.sh, or the host in the URL for a private ntfy server."""
    SERVICE = "service"
    """The service's own public API host, fixed in the plugin."""


APPRISE_SERVICES: Mapping[str, Reach] = MappingProxyType(
    {
        **dict.fromkeys(["mailto", "mailtos"], Reach.SMTP),
        **dict.fromkeys(
            [
                *("json", "jsons", "xml", "xmls", "form", "forms"),
                *("gotify", "gotifys", "mmost", "mmosts"),
                *("rocket", "rockets", "apprise", "apprises"),
            ],
            Reach.URL_HOST,
        ),
        **dict.fromkeys(["ntfy", "ntfys"], Reach.NTFY),
        **dict.fromkeys(
            ["tgram", "slack", "discord", "pover", "pbul", "gchat", "opsgenie", "pagerduty"],
            Reach.SERVICE,
        ),
    }
)
"""The Apprise schemes printfleet sends to, and where each one's plugin connects."""

UNUSABLE = "not a URL Apprise can use"


def _schemes(plugin: NotifyBase) -> set[str]:
    schemes: set[str] = set()
    for value in (type(plugin).protocol, type(plugin).secure_protocol):
        if isinstance(value, str):
            schemes.add(value.lower())
        elif isinstance(value, (list, tuple)):
            schemes.update(str(item).lower() for item in value)
    return schemes


def apprise_plugin(url: str, asset: apprise.AppriseAsset | None = None) -> NotifyBase:
    """Apprise's plugin for ``url``, if it is one printfleet sends to; ``ValueError`` says why
    not. Blocking the first time (Apprise loads its plugins)."""
    plugin = apprise.Apprise.instantiate(url, asset=asset)
    if plugin is None:
        raise ValueError(UNUSABLE)
    if not _schemes(plugin) & APPRISE_SERVICES.keys():
        allowed = ", ".join(f"{scheme}://" for scheme in APPRISE_SERVICES)
        msg = (
            f"{plugin.service_name} is not a service printfleet sends to: only those whose "
            f"connections it can check are ({allowed})"
        )
        raise ValueError(msg)
    # Like webhooks: a message goes to the server its owner named, not to where that server
    # points next (each hop would be vetted anyway).
    plugin.redirects = False
    return plugin


def apprise_destination(plugin: NotifyBase) -> tuple[str, int] | None:
    """The server the plugin connects to when its URL names it; None for a fixed service."""
    reach = next(
        APPRISE_SERVICES[scheme] for scheme in _schemes(plugin) if scheme in APPRISE_SERVICES
    )
    secure = bool(plugin.secure)
    default_port = 443 if secure else 80
    if reach is Reach.SMTP:
        host = str(getattr(plugin, "smtp_host", "") or plugin.host or "")
        return host, int(plugin.port or 25)
    if reach is Reach.URL_HOST or (
        reach is Reach.NTFY and getattr(plugin, "mode", None) != "cloud"
    ):
        return str(plugin.host or ""), int(plugin.port or default_port)
    return None


def check_apprise_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse an Apprise URL printfleet will not send to: ``ValueError`` for a URL or service
    it does not use, ``OutboundRefused`` for a server the policy refuses. Blocking."""
    destination = apprise_destination(apprise_plugin(url))
    if destination is not None:
        host, port = destination
        if not host:
            raise ValueError(UNUSABLE)
        policy.check_host(host, port)


@dataclass(frozen=True, slots=True)
class AppriseDelivery:
    """What became of one Apprise URL; ``target`` may hold credentials and stays out of ``repr``."""

    target: str = field(repr=False)
    delivered: bool
    reason: str


class AppriseSender:
    """Sends notifications through Apprise URLs (``mailto://``, ``ntfy://``, ``tgram://``, ...)."""

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        on_dead_letter: DeadLetterSink | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        """``policy`` vets every connection; the default refuses every internal address."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._timeout_s = timeout_s
        self._on_dead_letter = on_dead_letter
        self._policy = policy or OutboundPolicy()
        # In memory only: Apprise would otherwise keep per-service state in a cache directory.
        self._asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)

    async def warm_up(self) -> None:
        """Load Apprise's plugins now (a fraction of a second, in a thread), not at the first send.

        The first notification after a start is often the urgent one: a printer that faulted
        while the cloud was down.
        """
        await asyncio.to_thread(self._load_plugins)

    def _load_plugins(self) -> None:
        # Apprise imports every plugin, once per process, the first time it looks up a scheme.
        apprise.Apprise(asset=self._asset).add("json://localhost")

    async def send(self, notification: Notification, urls: Sequence[str]) -> list[AppriseDelivery]:
        """Send to every URL at once; one result per URL, in order. Failures are dead-lettered."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._send_one(notification, url), name=f"apprise-{index}")
                for index, url in enumerate(urls)
            ]
        return [task.result() for task in tasks]

    async def _send_one(self, notification: Notification, url: str) -> AppriseDelivery:
        try:
            async with asyncio.timeout(self._timeout_s):
                delivery = await asyncio.to_thread(self._send_blocking, notification, url)
        except TimeoutError:
            delivery = AppriseDelivery(url, delivered=False, reason="no answer in time")
        if not delivery.delivered:
            log.warning(
                "%s for notification %s not delivered: %s",
                redact_url(url, keep_host=False),
                notification.id,
                delivery.reason,
            )
            if self._on_dead_letter is not None:
                await self._on_dead_letter(
                    DeadLetter(
                        notification_id=notification.id,
                        channel="apprise",
                        target=url,
                        reason=delivery.reason,
                        attempts=1,
                        last_status=None,
                        payload=notification.to_json(),
                        failed_at=datetime.now(UTC),
                    )
                )
        return delivery

    def _send_blocking(self, notification: Notification, url: str) -> AppriseDelivery:
        # The plugin is called directly, in this thread, rather than through Apprise.notify(),
        # which may hand it to a pool of its own: the vetting below must see every connection.
        try:
            plugin = apprise_plugin(url, self._asset)
        except ValueError as error:
            return AppriseDelivery(url, delivered=False, reason=str(error))
        with vetted_resolution(self._policy) as vetting:
            try:
                delivered = plugin.notify(
                    body=notification.text(),
                    title=notification.title,
                    notify_type=_NOTIFY_TYPE[notification.severity],
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception as error:  # noqa: BLE001 - plugin code: any error is a failed delivery
                # The type only: a plugin's message may quote the URL, credentials and all.
                delivered, reason = False, f"{type(error).__name__} in Apprise"
            else:
                reason = "delivered" if delivered else "Apprise: FAILURE"
        if vetting.refused is not None:
            delivered, reason = False, f"refused by the outbound policy: {vetting.refused.rule}"
        return AppriseDelivery(url, delivered=bool(delivered), reason=reason)
