"""The web dashboard: static pages the cloud serves at ``/``, talking to the JSON API.

No build step: ``static/`` holds plain HTML, CSS and JavaScript modules, served as they are.
The page keeps its API token in ``sessionStorage`` and follows ``GET /api/v1/events`` (read
with ``fetch()``, so the token travels in a header, never in a URL), polling the REST API
whenever that stream is not available.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "install"]

STATIC_DIR = Path(__file__).parent / "static"
"""The dashboard's files."""

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> FileResponse:
    """The dashboard's one page; its views are chosen by the URL's fragment."""
    # no-cache: a browser revalidates, so an upgraded cloud never runs yesterday's page.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its files under ``/web/``."""
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=STATIC_DIR), name="dashboard")
