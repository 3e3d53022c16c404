"""Errors domain code raises; each edge (socket, HTTP) maps them to the wire in one place.

Messages are for people and start with the field when one is at fault
(``body: must not be empty``). Ids the caller may not see are ``NotFound``,
never ``Forbidden`` (PROTOCOL §4: existence must not leak).
"""

from __future__ import annotations

from protocol.codes import ErrorCode


class DomainError(Exception):
    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(DomainError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class TooLarge(DomainError):
    code = ErrorCode.TOO_LARGE


class Unavailable(DomainError):
    code = ErrorCode.UNAVAILABLE


class RateLimited(DomainError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
