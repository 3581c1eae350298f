"""Health and metrics, for load balancers and Prometheus; no account needed.

``/health`` is 200 only when the store answers and the broker link has fresh round-trip
evidence (S8): without either this replica cannot do its job, and a balancer should know.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from printfleet.cloud.api.context import Context
from printfleet.cloud.api.metrics import CONTENT_TYPE
from printfleet.cloud.api.schemas import Health, LinkHealth, StoreHealth
from printfleet.cloud.store import StoreError

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Store or broker link not working"}},
)
async def health(context: Context) -> JSONResponse:
    """The store's and the broker link's state; 503 unless both work."""
    try:
        await context.store.ping()
    except StoreError as error:
        store = StoreHealth(ok=False, error=str(error))
    else:
        store = StoreHealth(ok=True)
    link = None
    if context.core is not None:
        state = context.core.link.state()
        link = LinkHealth(
            connected=state.connected,
            verified=state.verified,
            evidence_age_s=state.evidence_age_s,
            last_rtt_s=state.last_rtt_s,
            connects=state.connects,
        )
    ok = store.ok and (link is None or link.verified)
    body = Health(status="ok" if ok else "unavailable", store=store, link=link)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics", response_class=Response)
async def metrics(context: Context) -> Response:
    """Prometheus metrics: jobs by state, link evidence, publish outcomes, refused starts."""
    return Response(await context.metrics.render(context.store.jobs), media_type=CONTENT_TYPE)
