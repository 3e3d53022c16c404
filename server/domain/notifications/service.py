"""The inbox: every user-facing happening writes a notification in the transaction of
the change, emits the durable ``notification`` event, and queues its push.

The push outbox row (``server.domain.push`` sends it) records the event's seq, whether
the user had a live socket (then it waits ``PUSH_DELAY_S`` for an ack of that seq before
pushing; otherwise it is due at once) and the collapse key (chat: the conversation).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from protocol.base import DurableEvent
from protocol.notifications import (
    NotificationEvent,
    NotificationsResult,
    UnreadCountResult,
)
from protocol.objects import Notification
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
    after: DurableEvent | None = None,
) -> dict[str, Notification]:
    """Write one notification per user in ``tx``, append its ``notification`` event and
    queue its push (due at once for users with no live connection anywhere; for the
    others only if no socket acks the event within ``PUSH_DELAY_S``).

    ``online`` may carry presence already looked up by the caller. Presence that cannot
    be read (Redis down) counts as offline: the push is queued rather than the change
    failed. ``after``: an event each user gets just before their notification (the
    change itself, e.g. ``lost.alert``), appended in the same two statements."""
    targets = list(dict.fromkeys(user_ids))
    if not targets:
        return {}
    if online is None:
        online = await presence.online_or_unknown(targets)
    collapse = collapse_key(kind, data)
    # Three statements however many users: the inbox rows, their events, the pushes.
    rows = await store.insert_notifications(tx.conn, targets, kind, title, body, data)
    out = {str(r["user_id"]): notification_from_row(r) for r in rows}
    first = [] if after is None else [after]
    seqs = await tx.append_each({u: [*first, NotificationEvent(seq=0, notification=note)]
                                 for u, note in out.items()})
    await store.insert_push_outbox_rows(
        tx.conn, [out[u].id for u in targets], targets, [seqs[u][-1] for u in targets],
        [online.get(u, False) for u in targets], collapse_key=collapse)
    tx.signal(PUSH_SIGNAL)
    return out


PUSH_SIGNAL = "push_outbox"
"""``Transaction.signal`` name: push outbox rows were committed (wakes the push worker)."""


def collapse_key(kind: str, data: dict[str, Any]) -> str | None:
    """Pushes with the same key replace each other on the device: a chat's pushes
    collapse per conversation (PROTOCOL §10.6); other kinds do not collapse."""
    conversation = data.get("conversation_id")
    if kind == "chat.message" and isinstance(conversation, str) and conversation:
        return f"chat:{conversation}"
    return None


class NotificationService:
    """The inbox commands (``notify`` writes notifications; devices and pushes are
    ``server.domain.push``)."""

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
