"""E-mail and the other Apprise services (ntfy, Telegram, Slack...): one send per URL, off the loop.

Apprise is synchronous and blocking, so each URL is sent in a worker thread (``asyncio.to_thread``)
and all URLs of one notification go out concurrently. Apprise's own call timeout bounds each send;
a thread cannot be cancelled, so a send that outlives it is reported as failed and left to finish.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import apprise

from printfleet.cloud.notify.model import (
    DeadLetter,
    DeadLetterSink,
    Notification,
    Severity,
    redact_url,
)

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


@dataclass(frozen=True, slots=True)
class AppriseDelivery:
    """What became of one Apprise URL; ``target`` may hold credentials and stays out of ``repr``."""

    target: str = field(repr=False)
    delivered: bool
    reason: str


class AppriseSender:
    """Sends notifications through Apprise URLs (``mailto://``, ``ntfy://``, ``tgram://``, ...)."""

    def __init__(
        self, *, timeout_s: float = 30.0, on_dead_letter: DeadLetterSink | None = None
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._timeout_s = timeout_s
        self._on_dead_letter = on_dead_letter
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
            # A little longer than Apprise's own limit, which should answer first and say which.
            async with asyncio.timeout(self._timeout_s + 5.0):
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
        # One Apprise object per URL: its result is then this URL's result, and a bad URL cannot
        # hide behind a good one.
        sender = apprise.Apprise(asset=self._asset)
        try:
            if not sender.add(url):
                return AppriseDelivery(url, delivered=False, reason="not a URL Apprise can use")
            result = sender.notify(
                body=notification.text(),
                title=notification.title,
                notify_type=_NOTIFY_TYPE[notification.severity],
                body_format=apprise.NotifyFormat.TEXT,
                timeout=self._timeout_s,
            )
        except Exception as error:  # noqa: BLE001 - plugin code: any error is a failed delivery
            # The type only: a plugin's message may quote the URL, credentials and all.
            return AppriseDelivery(
                url, delivered=False, reason=f"{type(error).__name__} in Apprise"
            )
        if result:
            return AppriseDelivery(url, delivered=True, reason="delivered")
        return AppriseDelivery(url, delivered=False, reason=f"Apprise: {result.status.name}")
