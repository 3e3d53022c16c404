"""``authenticate(request)``: the Principal of an HTTP request, for every route that needs one.

Order: an ``Authorization`` header (it must then be ``Bearer <access token>``),
else the session cookie. A cookie-authenticated request with a state-changing
method (anything but GET/HEAD/OPTIONS) must come from an allowed origin
(``Origin``, or ``Referer`` when Origin is absent, in ALLOWED_ORIGINS): that is
the CSRF defence, on top of SameSite=Lax. Bearer requests need no such check,
since a browser never attaches the header by itself.

Raises ``InvalidCredential`` / ``Unauthorized`` (401: none, invalid, expired or revoked)
and ``Forbidden`` (403: banned account, or a cross-site cookie request). A cookie naming a
revoked or unknown session is cleared on the response and treated as absent.
"""

from __future__ import annotations

from aiohttp import web

from server.auth.sessions import mark_stale
from server.errors import Forbidden, InvalidCredential, Unauthorized
from server.http.client import origin_allowed
from server.principal import Principal
from server.state import RUNTIME

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authenticate(request: web.Request) -> Principal:
    verifier = request.app[RUNTIME].verifier
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidCredential("expected Authorization: Bearer <access token>")
        return await verifier.from_bearer(token.strip())
    try:
        principal = await verifier.from_cookie(request)
    except InvalidCredential:
        # A revoked, expired or undecryptable cookie never blocks: it is cleared on the
        # response and the request goes on as if it carried none.
        mark_stale(request)
        principal = None
    if principal is None:
        raise Unauthorized("authentication required")
    if request.method not in SAFE_METHODS and not origin_allowed(request):
        raise Forbidden("cross-site request refused: Origin is not allowed")
    return principal
