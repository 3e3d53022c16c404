"""A notification as a push: ``{kind, title, body, data, unread_count}`` and no more.

``data`` keeps the notification's ids (string values as they are, other values as
JSON), dropping what a push cannot carry (keys outside ``[a-z][a-z0-9_]{0,39}``, values
over 256 characters, more than 16 entries), and always carries ``notification_id``: the
app can show each notification once (a notification tag) even if a push arrives twice.
The body is the notification's body — never more message text than the inbox shows.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from server.push.provider import (
    MAX_DATA_ENTRIES,
    MAX_DATA_VALUE_CHARS,
    PushPayload,
)

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_json = msgspec.json.Encoder()


def push_data(notification_id: str, data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {"notification_id": notification_id}
    for key, value in data.items():
        if len(out) >= MAX_DATA_ENTRIES:
            break
        if key in out or not isinstance(key, str) or not _KEY.match(key):
            continue
        text = value if isinstance(value, str) else _json.encode(value).decode()
        if len(text) <= MAX_DATA_VALUE_CHARS:
            out[key] = text
    return out


def build_payload(*, notification_id: str, kind: str, title: str, body: str,
                  data: dict[str, Any], unread_count: int,
                  collapse_key: str | None) -> PushPayload:
    return PushPayload(
        kind=kind, title=title, body=body, data=push_data(notification_id, data),
        unread_count=max(0, unread_count), collapse_key=collapse_key,
    )
