"""Serves the dashboard page and its packaged static files under ``/dashboard``, and its icon.

The page itself needs no token (it holds no data); everything it shows comes from the token-guarded
API. Static paths are resolved inside the package's ``static`` folder and nowhere else. The page
links its icon (``static/favicon.svg``); ``/favicon.ico`` answers with the same icon for the
browsers and tools that ask for that path regardless. ``/alerts/{id}``, the link every notification
carries, opens the warnings page on that alert.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from ..deps import Id
from ..errors import NotFound

__all__ = ["STATIC", "router"]

STATIC = Path(__file__).with_name("static").resolve()

router = APIRouter(tags=["dashboard"], include_in_schema=False)

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/json", ".json")


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/alerts/{alert_id}")
def alert_link(alert_id: Id) -> RedirectResponse:
    """The link of a notification (``QW_EXTERNAL_URL``/alerts/ID): the feed, showing that alert."""
    return RedirectResponse(f"/dashboard/#/feed?alert={alert_id}")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    icon = STATIC / "favicon.svg"
    return FileResponse(icon, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/static/{path:path}")
def static(path: str) -> FileResponse:
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        raise NotFound(f"no dashboard file {path!r}", field="path")
    media, _ = mimetypes.guess_type(target.name)
    return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})
