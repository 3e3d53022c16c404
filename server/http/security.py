"""HTTP hygiene for every route: CORS for ALLOWED_ORIGINS only, and security headers.

- A CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is
  answered here, before routing: 204 with the CORS headers for an allowed
  origin, 403 ``forbidden`` otherwise. Credentials are allowed, so the allowed
  origin is echoed (never ``*``). The allowed request headers are the ones the
  preflight asks for (well-formed names, at most 32: tracing headers such as
  ``traceparent`` pass) plus the ones the API reads; exposed response headers are
  ``Retry-After``, ``WWW-Authenticate``, ``ETag`` and ``X-Request-Id``.
- Every response (errors, WebSocket upgrades and streamed ones included: the
  headers are added in ``on_response_prepare``) gets ``Server: petspark`` (no
  versions; also on aiohttp's own answers to malformed requests, ``hide_versions``),
  ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` (API
  responses are data, never a page to render or frame), ``X-Content-Type-Options:
  nosniff``, ``Referrer-Policy: no-referrer``, ``Vary: Origin`` and, in
  production, ``Strict-Transport-Security``; and the CORS headers when the
  request's ``Origin`` is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable

from aiohttp import web, web_response
from aiohttp.typedefs import Handler

from server.http.errors import error_response
from server.state import SETTINGS

CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = ("Authorization", "Content-Type", "X-Request-Id", "Idempotency-Key")
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate, ETag, X-Request-Id"
MAX_REQUESTED_HEADERS = 32
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
PREFLIGHT_MAX_AGE_S = "600"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin and origin in request.app[SETTINGS].allowed_origins:
        return origin
    return None


@web.middleware
def cors_preflight(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    # Not a coroutine: anything but a preflight gets the handler's own awaitable back, so
    # this middleware keeps no frame for as long as the request lives (a WebSocket's
    # whole life: less memory per idle socket).
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return handler(request)
    return _answered(_preflight(request))


async def _answered(response: web.StreamResponse) -> web.StreamResponse:
    return response


def _preflight(request: web.Request) -> web.Response:
    origin = _allowed_origin(request)
    if origin is None:
        return error_response(403, "forbidden", "origin is not allowed")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": allowed_headers(
                request.headers.get("Access-Control-Request-Headers", "")),
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
            "Vary": "Origin, Access-Control-Request-Headers",
        },
    )


def allowed_headers(requested: str) -> str:
    """The API's own headers plus what the preflight asked for (valid names only)."""
    names = list(ALLOW_HEADERS)
    seen = {n.lower() for n in names}
    for raw in requested.split(",")[:MAX_REQUESTED_HEADERS]:
        name = raw.strip()
        if _HEADER_NAME.match(name) and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return ", ".join(names)


SERVER_NAME = "petspark"
"""The ``Server`` header: no product versions (nothing to match against a CVE list)."""


def hide_versions() -> None:
    """Responses aiohttp makes itself before any route (a malformed request line, a header
    over the limits) skip ``on_response_prepare``; their default ``Server`` header is
    aiohttp's module constant, which has no setting: replace it, once per process."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    if headers.get("Server") != SERVER_NAME:  # aiohttp set it already (hide_versions):
        headers["Server"] = SERVER_NAME  # setting it again grows the headers' table
    if response.status == 101:
        # A WebSocket upgrade has no content for CSP/nosniff/Referrer-Policy to govern and
        # browsers apply no CORS to sockets; its headers live as long as the socket does
        # (less memory per idle socket).
        return
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.app[SETTINGS].is_production:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if not any("Origin" in value for value in headers.getall("Vary", [])):
        headers.add("Vary", "Origin")
    origin = _allowed_origin(request)
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
