"""The cloud's HTTP API: FastAPI routers over :class:`~printfleet.cloud.service.CloudService`.

Routes authenticate (bearer tokens), parse and shape JSON, and map errors; the service decides
who may do what. :func:`install` adds every router and the error handlers to an app; the app
itself, and its lifespan, are made by :func:`printfleet.cloud.app.create_app`.
"""

from fastapi import FastAPI

from printfleet.cloud import web
from printfleet.cloud.api import (
    accounts,
    alerts,
    channels,
    events,
    heaters,
    jobs,
    maintenance,
    materials,
    operations,
    pools,
    printers,
    stats,
    uploads,
)
from printfleet.cloud.api.context import ApiContext, Context, get_context
from printfleet.cloud.api.errors import ErrorBody, install_error_handlers
from printfleet.cloud.api.metrics import CloudMetrics

__all__ = [
    "ApiContext",
    "CloudMetrics",
    "Context",
    "ErrorBody",
    "get_context",
    "install",
]


def install(app: FastAPI) -> None:
    """Add every route and the error handlers to ``app``."""
    install_error_handlers(app)
    routers = (
        accounts,
        printers,
        heaters,
        materials,
        uploads,
        jobs,
        pools,
        alerts,
        stats,
        maintenance,
        events,
        channels,
        operations,
    )
    for module in routers:
        app.include_router(module.router)
    # The dashboard's pages last: "/" and "/web/..." shadow none of the API's routes.
    web.install(app)
