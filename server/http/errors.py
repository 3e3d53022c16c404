"""The one place HTTP errors become JSON ``{"error": {"code", "message"}}`` (PROTOCOL §4)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from aiohttp import web

from protocol.codes import HTTP_STATUS
from server.auth.principal import AuthError
from server.domain.errors import DomainError, RateLimited

_STATUS_CODE = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return web.Response(
        status=status, body=body, content_type="application/json", headers=headers
    )


class ApiError(Exception):
    """Raised by HTTP handlers; the middleware turns it into the JSON error body."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


def from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _STATUS_CODE.get(exc.status, "internal" if exc.status >= 500 else "bad_request")
    headers: dict[str, Any] = {
        k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")
    }
    return error_response(exc.status, code, exc.reason, headers)


def from_domain_error(exc: DomainError | AuthError) -> web.Response:
    """Typed errors of domain and auth code, as their HTTP status and JSON body."""
    if isinstance(exc, AuthError):
        return error_response(exc.status, exc.code, exc.message)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return error_response(HTTP_STATUS[exc.code], exc.code.value, exc.message, headers)
