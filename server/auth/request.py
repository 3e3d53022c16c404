"""``authenticate(request)``: the Principal of an HTTP request, for every route that needs one.

Order: an ``Authorization`` header (it must then be ``Bearer <access token>``),
else the session cookie. A cookie-authenticated request with a state-changing
method (anything but GET/HEAD/OPTIONS) must come from an allowed origin
(``Origin``, or ``Referer`` when Origin is absent, in ALLOWED_ORIGINS): that is
the CSRF defence, on top of SameSite=Lax. Bearer requests need no such check,
since a browser never attaches the header by itself.

Raises ``ApiError``: 401 ``unauthorized`` (none, invalid, expired or revoked),
403 ``forbidden`` (banned account, or a cross-site cookie request).
"""

from __future__ import annotations

from aiohttp import web

from server.auth.principal import AuthError, InvalidCredential, Principal
from server.auth.verifier import VERIFIER
from server.http.client import origin_allowed
from server.http.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="petspark"'}


async def authenticate(request: web.Request) -> Principal:
    verifier = request.app[VERIFIER]
    header = request.headers.get("Authorization")
    try:
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidCredential("expected Authorization: Bearer <access token>")
            return await verifier.from_bearer(token.strip())
        principal = await verifier.from_cookie(request)
    except AuthError as exc:
        headers = _CHALLENGE if exc.status == 401 else None
        raise ApiError(exc.status, exc.code, exc.message, headers) from None
    if principal is None:
        raise ApiError(401, "unauthorized", "authentication required", _CHALLENGE)
    if request.method not in SAFE_METHODS and not origin_allowed(request):
        raise ApiError(403, "forbidden", "cross-site request refused: Origin is not allowed")
    return principal
