"""The HTTP edge's one error mapper: ``{"error": {"code", "message", "field"?}}`` (PROTOCOL
§4, §9).

Handlers raise ``server.errors.AppError``; the middleware calls ``response_for`` with the
names the route's request can carry (body, query and form fields, from the route's
``server.http.contracts`` operation), so ``field`` is set only for a real field. aiohttp's
own ``HTTPException``s (no such route, wrong method — ``method_not_allowed`` with
``Allow`` —, body over the server's limit) are mapped by ``from_http_exception`` to the
same shape. Every 401 carries
``WWW-Authenticate: Bearer``; every 429 (and a 503 that knows when to retry) carries
``Retry-After`` in whole seconds (``server.errors.retry_after_header``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec
from aiohttp import web

from protocol.codes import ErrorCode
from server.errors import AppError, retry_after_header

CHALLENGE = 'Bearer realm="petspark"'

_STATUS_CODE = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    field: str | None = None,
) -> web.Response:
    detail = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    body = msgspec.json.encode({"error": detail})
    return web.Response(
        status=status, body=body, content_type="application/json", headers=headers
    )


def response_for(exc: AppError, fields: Collection[str] = ()) -> web.Response:
    """An ``AppError`` as its HTTP status, headers and JSON body; ``fields`` are the names
    the request could carry (``AppError.field_in``)."""
    headers: dict[str, str] = {}
    if exc.code is ErrorCode.UNAUTHORIZED:
        headers["WWW-Authenticate"] = CHALLENGE
    if exc.retry_after_s is not None:
        headers["Retry-After"] = retry_after_header(exc.retry_after_s)
    return error_response(exc.status, exc.code.value, exc.message, headers or None,
                          field=exc.field_in(fields))


def from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _STATUS_CODE.get(exc.status, "internal" if exc.status >= 500 else "bad_request")
    headers: dict[str, Any] = {
        k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")
    }
    return error_response(exc.status, code, exc.reason, headers)
