"""Error codes (PROTOCOL §4) and WebSocket close codes (PROTOCOL §7).

An ``error`` reply ends one command and keeps the connection; a close code ends
the connection. Both sets are closed lists in protocol v1: adding a member is a
contract change.
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` reply and of an HTTP ``{"error": {...}}`` body."""

    BAD_REQUEST = "bad_request"
    """The message could not be decoded or failed validation (HTTP 400)."""
    UNAUTHORIZED = "unauthorized"
    """No valid credentials, or wrong credentials (HTTP 401)."""
    FORBIDDEN = "forbidden"
    """The user can see the thing but may not do this to it (HTTP 403)."""
    NOT_FOUND = "not_found"
    """No such thing, or one the user may not see — existence never leaks (HTTP 404)."""
    CONFLICT = "conflict"
    """The change contradicts the current state, e.g. a closed conversation (HTTP 409)."""
    RATE_LIMITED = "rate_limited"
    """Too many requests; the reply carries ``retry_after_s`` (HTTP 429)."""
    TOO_LARGE = "too_large"
    """A text, list or file is over its size limit (HTTP 413)."""
    UNAVAILABLE = "unavailable"
    """A dependency is down or the server is shutting down; retry later (HTTP 503)."""
    INTERNAL = "internal"
    """A server bug; the details are in the server log, never on the wire (HTTP 500)."""
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    """HTTP only: the body or upload has a content type the route does not take (HTTP 415)."""
    METHOD_NOT_ALLOWED = "method_not_allowed"
    """HTTP only: the route exists, not with this method; ``Allow`` lists its methods
    (HTTP 405)."""


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
}
"""The HTTP status the HTTP layer answers for each code."""

_FIELD_PATH = re.compile(r"(?P<path>[a-z_][a-z0-9_]*(?:\[\d+\]|\.[a-z_][a-z0-9_]*)*): ")
_ROOT = re.compile(r"[a-z0-9_]+")


def leading_field(message: str) -> str | None:
    """The field path an error message starts with (``"location.lat: expected ≤ 90"`` →
    ``"location.lat"``, ``"photo_ids[1]: no such upload"`` → ``"photo_ids[1]"``), or None
    (``"invalid JSON"``, ``"request body: …"``). Error messages name their field this way;
    the ``field`` of an error is that path."""
    m = _FIELD_PATH.match(message)
    return m["path"] if m else None


def field_root(path: str) -> str:
    """The first name of a field path: ``photo_ids[1]`` → ``photo_ids``, ``a.b`` → ``a``."""
    m = _ROOT.match(path)
    return m[0] if m else path


class CloseCode(IntEnum):
    """WebSocket close codes the server uses, with what the client should do."""

    NORMAL = 1000
    """Normal close. Client: nothing to do."""
    GOING_AWAY = 1001
    """Server going away (deploy, shutdown). Client: reconnect at once, with resume."""
    TOO_LARGE = 1009
    """An inbound frame was over ``WS_MAX_MESSAGE_BYTES``. Client: fix the client."""
    INTERNAL_ERROR = 1011
    """The server hit a bug serving this socket. Client: reconnect with backoff and resume;
    nothing durable is lost."""
    TRY_AGAIN_LATER = 1013
    """A backend the session needs (PostgreSQL) is unavailable right now, so the socket
    could not be started. Client: reconnect with backoff and resume; nothing is lost."""
    PROTOCOL_VIOLATION = 4000
    """Protocol violation, e.g. no ``hello`` first. Client: fix the client."""
    NOT_AUTHENTICATED = 4001
    """Missing, invalid, expired or revoked credentials. Client: get new credentials first."""
    HEARTBEAT_TIMEOUT = 4002
    """No protocol message for twice ``heartbeat_s``. Client: reconnect with backoff."""
    FORBIDDEN = 4003
    """Banned or closed account. Client: do not reconnect."""
    SLOW_CONSUMER = 4008
    """The outbound queue overflowed. Client: reconnect with resume; nothing is lost."""
    TOKEN_EXPIRED = 4009
    """The access token expired. Client: refresh it (HTTP), then reconnect with resume."""
    REPLACED = 4010
    """The user opened more than ``WS_MAX_CONNECTIONS_PER_USER`` sockets; this, the
    oldest, was closed. Client: do not reconnect by itself (it would close another)."""
    RATE_LIMIT_ABUSE = 4029
    """Most of its frames (any kind) were refused by the rate limits over ``WS_ABUSE_S``.
    Client: reconnect after backoff."""


_NO_RECONNECT = frozenset(
    {
        CloseCode.TOO_LARGE,
        CloseCode.PROTOCOL_VIOLATION,
        CloseCode.NOT_AUTHENTICATED,
        CloseCode.FORBIDDEN,
        CloseCode.REPLACED,
    }
)


def should_reconnect(code: int) -> bool:
    """Whether a client should reconnect (with jittered backoff) after close ``code``.

    False for codes that a retry cannot fix by itself: 1009 and 4000 (client bug),
    4001 (get new credentials first), 4003 (banned) and 4010 (replaced by a
    newer connection of the same user). Unknown codes, including
    abnormal closes such as 1006, return True.
    """
    return code not in _NO_RECONNECT
