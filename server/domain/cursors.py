"""Opaque page cursors, shared by every list command (``cursor?`` → ``next_cursor?``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from server.errors import BadRequest
from server.ids import is_id


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor: base64url of a msgpack array. Clients send it back unchanged."""
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...], field: str = "cursor") -> tuple[Any, ...]:
    """Decode a cursor made by ``encode_cursor`` whose parts have ``types``; else bad_request.
    The last part is always a row id (the tie-breaker) and must be one of our ids."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = msgspec.msgpack.decode(raw, type=tuple[types])  # type: ignore[valid-type]
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest(f"{field}: not a cursor this server issued") from None
    if not parts or not is_id(parts[-1]):
        raise BadRequest(f"{field}: not a cursor this server issued")
    return tuple(parts)
