"""The built-in dashboard (GET /): static files that read the same REST API as any BI tool.

Every script and style is served from here, so the dashboard works offline; the
Content-Security-Policy keeps the page from loading anything from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import NotFound

router = APIRouter(tags=["dashboard"], include_in_schema=False)

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"

# The files the page is made of, and their media types (not guessed from the platform's table).
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "sheets.js": "text/javascript; charset=utf-8",
    "notes.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@router.api_route("/", methods=["GET", "HEAD"])
def dashboard() -> FileResponse:
    """The dashboard page."""
    return FileResponse(
        DASHBOARD_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.api_route("/dashboard/{name}", methods=["GET", "HEAD"])
def dashboard_asset(name: str) -> FileResponse:
    """One of the dashboard's scripts, styles or icons."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such dashboard file")
    return FileResponse(DASHBOARD_DIR / name, media_type=media_type, headers=HEADERS)
