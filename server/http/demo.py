"""The client demo page (development only): ``GET /demo/`` and its two assets.

A tidy single page that drives the whole stack through the TypeScript client
(``clients/typescript``): register/login (cookie), pets, swipes, chat with typing and
read receipts, lost-pet alerts, uploads with a progress bar. The JavaScript is the
committed bundle of ``clients/typescript/demo/demo.ts`` (``npm run build:demo``), so
the page works on a fresh clone with Python only. Not registered when
``ENVIRONMENT=production``.

The socket authenticates with the session cookie, so the page's origin
(``http://HOST:PORT``) must be in ``ALLOWED_ORIGINS``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server.state import SETTINGS

ASSETS = Path(__file__).with_name("demo_assets")
_FILES = {
    "index.html": "text/html",
    "demo.js": "text/javascript",
    "demo.css": "text/css",
}
# The API's own CSP is "default-src 'none'"; the page needs its own script, style,
# its socket and blob: previews of the chosen photo, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def _serve(name: str) -> web.Response:
    path = ASSETS / name
    return web.Response(
        body=path.read_bytes(),
        content_type=_FILES[name],
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


async def index(request: web.Request) -> web.Response:
    return await _serve("index.html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _FILES or name == "index.html":
        raise web.HTTPNotFound()
    return await _serve(name)


async def to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/demo/")


def add_routes(app: web.Application) -> None:
    """Register the demo routes unless the app runs in production."""
    if app[SETTINGS].is_production:
        return
    app.router.add_get("/demo", to_index, allow_head=False)
    app.router.add_get("/demo/", index, allow_head=False)
    app.router.add_get("/demo/{name}", asset, allow_head=False)
