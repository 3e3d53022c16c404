"""The inbox: every user-facing happening writes a notification in the transaction of
the change, emits the durable ``notification`` event, and queues a push for users
with no live connection (sending is a later issue; the outbox row is the contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from protocol.notifications import (
    DeviceResult,
    NotificationEvent,
    NotificationsResult,
    UnreadCountResult,
)
from protocol.objects import Device, Notification, Platform
from server.deps import Deps
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.notifications import store
from server.ids import parse_id
from server.realtime.presence import Presence
from server.realtime.stream import Transaction


def notification_from_row(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"], kind=row["kind"], title=row["title"], body=row["body"],
        data=dict(row["data"]), created_at=row["created_at"],
        read_at=row["read_at"],
    )


async def notify(
    tx: Transaction, presence: Presence, user_ids: Sequence[str], *, kind: str, title: str,
    body: str, data: dict[str, Any], online: dict[str, bool] | None = None,
) -> dict[str, Notification]:
    """Write one notification per user in ``tx``, append its ``notification`` event and,
    for users with no live connection anywhere, a push outbox row.

    ``online`` may carry presence already looked up by the caller. Presence that cannot
    be read (Redis down) counts as offline: the push is queued rather than the change
    failed."""
    targets = list(dict.fromkeys(user_ids))
    if not targets:
        return {}
    if online is None:
        online = await presence.online_or_unknown(targets)
    out: dict[str, Notification] = {}
    for user_id in targets:
        row = await store.insert_notification(tx.conn, user_id, kind, title, body, data)
        note = notification_from_row(row)
        await tx.append([user_id], NotificationEvent(seq=0, notification=note))
        if not online.get(user_id, False):
            await store.insert_push_outbox(tx.conn, note.id, user_id)
        out[user_id] = note
    return out


class NotificationService:
    """The inbox commands and push devices (``notify`` writes notifications)."""

    def __init__(self, deps: Deps) -> None:
        self.db = deps.db

    async def list_notifications(
        self, user_id: str, *, cursor: str | None, unread_only: bool, limit: int,
    ) -> NotificationsResult:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, nid = decode_cursor(cursor, (datetime, str))
            after = (at, nid)
        rows = await store.select_notifications(self.db, user_id, unread_only=unread_only,
                                                after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [notification_from_row(r) for r in rows]
        next_cursor = (encode_cursor(items[-1].created_at, items[-1].id) if more and items
                       else None)
        unread = await store.select_unread_count(self.db, user_id)
        return NotificationsResult(notifications=items, next_cursor=next_cursor,
                                   unread_count=unread)

    async def mark_read(self, user_id: str, ids: list[str] | None) -> UnreadCountResult:
        if ids is not None:
            # An id that cannot exist is an unknown id: skipped.
            ids = [p for p in (parse_id(i) for i in ids) if p is not None]
        await store.update_notifications_read(self.db, user_id, ids)
        return UnreadCountResult(unread_count=await store.select_unread_count(self.db, user_id))

    async def register_device(self, user_id: str, platform: Platform, token: str
                              ) -> DeviceResult:
        row = await store.upsert_device(self.db, user_id, platform.value, token)
        return DeviceResult(device=Device(id=row["id"], platform=Platform(row["platform"])))
