"""What the HTTP routes reach the cloud through: one object, built by the app's lifespan.

Routes take it as a typed dependency (``Context``), never as loose attributes of the app, so
a handler names exactly what it uses and mypy checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from printfleet.cloud.api.metrics import CloudMetrics
from printfleet.cloud.callers import VerifiedCallers
from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.embedded_broker import EmbeddedBroker
from printfleet.cloud.files import FileStorage
from printfleet.cloud.login_backoff import LoginBackoff
from printfleet.cloud.notify.announcer import Announcer
from printfleet.cloud.service import CloudService
from printfleet.cloud.store import PrinterRecord, Store


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The running cloud as the HTTP layer sees it."""

    service: CloudService
    store: Store
    files: FileStorage
    core: CloudCore | None
    metrics: CloudMetrics
    open_registration: bool
    """Whether anyone may create an account; the very first account may always be created."""
    printer_registered: Callable[[PrinterRecord], None] = lambda printer: None
    """Told of each printer provisioned here (the dispatcher's model lookup)."""
    announcer: Announcer | None = None
    """Notifications: the event bus behind ``/events``, channels and their deliveries."""
    callers: VerifiedCallers = field(default_factory=VerifiedCallers)
    """Told which bearer tokens authenticate as whom, for admission control's rate limits."""
    logins: LoginBackoff = field(default_factory=LoginBackoff)
    """Failed logins per account and per address, and the waits they impose."""
    embedded_broker: EmbeddedBroker | None = None
    """The broker the cloud runs itself when none is configured (the demo may stop it)."""


def get_context(request: Request) -> ApiContext:
    """The context the lifespan stored on the app; fails loudly outside a lifespan."""
    context = getattr(request.app.state, "printfleet", None)
    if not isinstance(context, ApiContext):
        msg = "the printfleet app was used without its lifespan (create_app() sets it up)"
        raise RuntimeError(msg)  # noqa: TRY004 - a wiring bug, not a bad argument
    return context


Context = Annotated[ApiContext, Depends(get_context)]
"""A route parameter of this type receives the :class:`ApiContext`."""
