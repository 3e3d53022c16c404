"""The one parser for the ids the server issues (UUIDs), used by every area and edge.

Only the canonical spelling (``8-4-4-4-12`` hex digits, either case) is an id. Anything
else — other UUID spellings (``{…}``, ``urn:uuid:…``, no hyphens), garbage, NUL bytes —
cannot be one of ours, so it is answered exactly like an unknown id (``not_found``), and
never reaches the database (which would refuse it with an error of its own).
"""

from __future__ import annotations

import re

from server.errors import NotFound

_HEX = "[0-9a-fA-F]"
_CANONICAL = re.compile(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")


def parse_id(value: object) -> str | None:
    """The id in canonical lower-case form, or None when ``value`` cannot be one."""
    if not isinstance(value, str) or not _CANONICAL.fullmatch(value):
        return None
    return value.lower()


def is_id(value: object) -> bool:
    return parse_id(value) is not None


def require_id(value: str, field: str, what: str = "no such id") -> str:
    """``parse_id`` or ``NotFound("<field>: <what>")`` — the same answer as an unknown id."""
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound(f"{field}: {what}")
    return parsed
