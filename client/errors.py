"""Exceptions the client raises: per-command failures and connection ends.

``CommandError`` (and one subclass per ``ErrorCode``) is the server's ``error``
reply to one command; the connection is fine. ``ConnectionClosed`` means the
client has stopped for good (a close code that a reconnect cannot fix, or
``close()``); ``ConnectionLost`` means the connection dropped while a command
that is not safe to resend was in flight (the client itself reconnects).
"""

from __future__ import annotations

from protocol import Error, ErrorCode


class ClientError(Exception):
    """Base of every exception raised by ``client``."""


class CommandError(ClientError):
    """The server answered a command with ``error``."""

    code: ErrorCode

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        retry_after_s: float | None = None,
        *,
        command_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.command_id = command_id
        self.field = field
        """The path of the field at fault (``body``, ``location.lat``), when the server
        named one."""

    @staticmethod
    def from_reply(reply: Error) -> CommandError:
        """The exception for an ``error`` reply: the subclass for its code."""
        cls = ERROR_CLASSES.get(reply.code, CommandError)
        return cls(reply.code, reply.message, reply.retry_after_s, command_id=reply.id,
                   field=reply.field)


class BadRequest(CommandError):
    """``bad_request``: the command could not be decoded or failed validation."""


class Unauthorized(CommandError):
    """``unauthorized``."""


class Forbidden(CommandError):
    """``forbidden``: visible but not allowed (owner-only, admin-only)."""


class NotFound(CommandError):
    """``not_found``: no such thing, or one this user may not see."""


class Conflict(CommandError):
    """``conflict``: contradicts the current state."""


class RateLimited(CommandError):
    """``rate_limited``: wait ``retry_after_s`` before trying again."""


class TooLarge(CommandError):
    """``too_large``: a text or list over its limit."""


class Unavailable(CommandError):
    """``unavailable``: a dependency is down or the server is stopping; retry later."""


class InternalServerError(CommandError):
    """``internal``: a server bug (details only in the server log)."""


class UnsupportedMediaType(CommandError):
    """``unsupported_media_type`` (HTTP only, listed for completeness)."""


class MethodNotAllowed(CommandError):
    """``method_not_allowed`` (HTTP only, listed for completeness)."""


ERROR_CLASSES: dict[ErrorCode, type[CommandError]] = {
    ErrorCode.BAD_REQUEST: BadRequest,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.INTERNAL: InternalServerError,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaType,
    ErrorCode.METHOD_NOT_ALLOWED: MethodNotAllowed,
}
"""Error code → the ``CommandError`` subclass raised for it."""


class CommandTimeout(ClientError, TimeoutError):
    """No reply within the command's timeout (a late reply is ignored)."""


class InvalidReply(ClientError):
    """The ``ok.result`` did not decode as the command's ``result_type``."""


class ConnectionLost(ClientError):
    """The connection dropped before this command was answered, and the command is
    not safe to resend (no ``idempotency_key``/``client_msg_id``). It may or may not
    have taken effect; the caller decides whether to retry."""


class ConnectionClosed(ClientError):
    """The client stopped and will not reconnect: ``code`` is the close code that
    stopped it (4001, 4003, 4000, 1009, …) or 1000 after ``close()``."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class HandshakeRejected(ConnectionClosed):
    """The HTTP upgrade itself was refused (e.g. 403 for a cookie-authenticated
    upgrade from a foreign ``Origin``). ``status`` is the HTTP status; ``code`` is
    the close code it is treated as (401 → 4001, 403 → 4003)."""

    def __init__(self, status: int, code: int, reason: str = "") -> None:
        super().__init__(code, reason or f"HTTP {status} on upgrade")
        self.status = status
