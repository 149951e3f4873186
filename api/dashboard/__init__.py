"""The live dashboard: a static page (no build step, nothing fetched from the internet) served at "/" with its
assets under /dashboard/; the page holds no data and reads the API with the key the user gives it.

Wiring: `app.include_router(api.dashboard.router)` in the API's create_app.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import RedirectResponse, Response

HERE = resources.files(__package__)

# inline so the package data stays *.html/*.js/*.css (what pyproject ships)
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="14" '
           b'fill="#1f6f4a"/><path d="M9 20c3-9 11-11 15-11-1 8-6 14-13 13" fill="#8fe3b0"/><path d="M9 24c2-5 '
           b'6-9 10-11" stroke="#1f6f4a" stroke-width="1.6" fill="none"/></svg>')

# name -> media type; only these files are served (no directory listing, no path traversal)
ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "held.js": "text/javascript; charset=utf-8",
    "performance.js": "text/javascript; charset=utf-8",
    "records.js": "text/javascript; charset=utf-8",
    "activity.js": "text/javascript; charset=utf-8",
    "sites.js": "text/javascript; charset=utf-8",
    "flows.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# Everything the page loads comes from this server; the API key never leaves it (no inline script, no frames).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _read(name: str) -> bytes:
    return FAVICON if name == "favicon.svg" else HERE.joinpath(name).read_bytes()


@router.get("/")
def index() -> Response:
    """The dashboard page (the API key is asked for by the page itself and kept in the tab's sessionStorage)."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/dashboard")
def dashboard_redirect() -> RedirectResponse:
    return RedirectResponse("/")


@router.get("/dashboard/{name}")
def asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(404, f"no dashboard asset {name!r}")
    return Response(_read(name), media_type=media, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
