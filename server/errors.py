"""The error kernel: the one exception type every layer raises, and the one Retry-After rule.

``AppError`` carries what each edge needs and nothing else:

- ``code`` — the wire error code (PROTOCOL §4); its HTTP status is ``HTTP_STATUS[code]``;
- ``message`` — for people; starts with the field at fault (``body: must not be blank``);
- ``field`` — for programs: the path of the field at fault (``body``, ``location.lat``,
  ``photo_ids[1]``), sent next to the message as ``field`` (HTTP body and socket ``error``).
  Pass ``field=`` where it is known; otherwise ``field_in(names)`` reads it from the
  message's leading ``path: `` when the path's first name is one the request can carry
  (each edge knows those names: the command's fields, a route's body, query and form
  fields), so ``BadRequest("email: already registered")`` needs nothing more and
  ``Unavailable("storage: …")`` names no field;
- ``close_code`` — set only where the error must end a socket if it happens during the
  handshake (invalid credentials 4001, a banned account 4003);
- ``retry_after_s`` — for ``rate_limited`` (and ``unavailable`` when known).

Each edge has one mapper: the gateway's reply and close (``server.gateway.errors``) and
the HTTP body (``server.http.errors``). Anything that is not an ``AppError`` is a bug:
the edges log it once and answer ``internal``.

Ids the caller may not see are ``NotFound``, never ``Forbidden`` (existence must not
leak).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import ClassVar

from protocol.codes import HTTP_STATUS, CloseCode, ErrorCode, field_root, leading_field


class AppError(Exception):
    code: ClassVar[ErrorCode] = ErrorCode.BAD_REQUEST
    close_code: ClassVar[CloseCode | None] = None

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.field = field
        """The field at fault when the raiser knew it; see ``field_in``."""

    def field_in(self, names: Collection[str]) -> str | None:
        """The field at fault: the one given to the constructor, else the message's
        leading path when its first name is in ``names`` (the fields the request could
        carry), else None."""
        if self.field:
            return self.field
        path = leading_field(self.message)
        if path is not None and field_root(path) in names:
            return path
        return None

    @property
    def status(self) -> int:
        """The HTTP status of this error."""
        return HTTP_STATUS[self.code]


class BadRequest(AppError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(AppError):
    code = ErrorCode.UNAUTHORIZED
    close_code = CloseCode.NOT_AUTHENTICATED


class InvalidCredential(Unauthorized):
    """Missing, malformed, expired or revoked token/cookie → HTTP 401 / close 4001."""

    def __init__(self, message: str = "invalid or expired credentials") -> None:
        super().__init__(message)


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN


class AccountBanned(Forbidden):
    """The account is banned or closed → HTTP 403 / close 4003."""

    close_code = CloseCode.FORBIDDEN

    def __init__(self, message: str = "account is banned") -> None:
        super().__init__(message)


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class Conflict(AppError):
    code = ErrorCode.CONFLICT


class TooLarge(AppError):
    code = ErrorCode.TOO_LARGE


class UnsupportedMediaType(AppError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class MethodNotAllowed(AppError):
    """HTTP only: the route exists but not with this method (405, with ``Allow``)."""

    code = ErrorCode.METHOD_NOT_ALLOWED


class Unavailable(AppError):
    code = ErrorCode.UNAVAILABLE


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


def retry_after_header(seconds: float) -> str:
    """The ``Retry-After`` header value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
