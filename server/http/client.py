"""Who is on the other end of an HTTP request: the client address and the request's origin.

The address is the TCP peer, or — only with ``TRUST_FORWARDED_FOR``, behind a
proxy that *sets* the header — the first ``X-Forwarded-For`` hop. Rate limits
and the ``sessions.ip`` column use it; an unparsable value is ``None``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from server.state import SETTINGS


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: web.Request) -> str | None:
    if request.app[SETTINGS].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = _ip(forwarded.split(",", 1)[0]) if forwarded else None
        if first is not None:
            return first
    return _ip(request.remote)


def request_origin(request: web.Request) -> str | None:
    """The ``Origin`` header, or the origin of ``Referer`` when Origin is absent."""
    origin = request.headers.get("Origin")
    if origin:
        return origin
    referer = request.headers.get("Referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def origin_allowed(request: web.Request) -> bool:
    """True when the request's origin (Origin, else Referer) is one of ALLOWED_ORIGINS.
    A request with neither is not allowed (``Origin: null`` never is)."""
    origin = request_origin(request)
    return origin is not None and origin in request.app[SETTINGS].allowed_origins
