"""Small helpers every area shares: id checks and opaque page cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import msgspec

from server.domain.errors import BadRequest, NotFound


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def require_id(value: str, field: str, what: str = "no such id") -> str:
    """Our ids are UUIDs; anything else cannot exist, so it is ``not_found`` (never a
    database error, and never a different answer from an unknown id)."""
    if not is_uuid(value):
        raise NotFound(f"{field}: {what}")
    return value


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor: base64url of a msgpack array. Clients send it back unchanged."""
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...], field: str = "cursor") -> tuple[Any, ...]:
    """Decode a cursor made by ``encode_cursor`` whose parts have ``types``; else bad_request.
    The last part is always a row id (the tie-breaker) and must be a UUID."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = msgspec.msgpack.decode(raw, type=tuple[types])  # type: ignore[valid-type]
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest(f"{field}: not a cursor this server issued") from None
    if not parts or not isinstance(parts[-1], str) or not is_uuid(parts[-1]):
        raise BadRequest(f"{field}: not a cursor this server issued")
    return tuple(parts)
