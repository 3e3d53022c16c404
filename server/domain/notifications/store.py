"""Plain SQL for the notification inbox and the push outbox rows ``notify`` writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_COLUMNS = "id::text AS id, kind, title, body, data, created_at, read_at"


async def insert_notifications(
    conn: asyncpg.Connection, user_ids: list[str], kind: str, title: str, body: str,
    data: dict[str, Any],
) -> list[asyncpg.Record]:
    """The same notification for each user, one row each (with ``user_id``)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""INSERT INTO notifications (user_id, kind, title, body, data)
            SELECT u, $2, $3, $4, $5::jsonb FROM unnest($1::uuid[]) AS u
            RETURNING user_id, {_COLUMNS}""",
        user_ids, kind, title, body, data,
    )
    return rows


async def insert_push_outbox_rows(
    conn: asyncpg.Connection, notification_ids: list[str], user_ids: list[str],
    event_seqs: list[int], awaits_ack: list[bool], *, collapse_key: str | None,
) -> None:
    """One push outbox row per (notification, user, event seq, awaits ack)."""
    await conn.execute(
        """INSERT INTO push_outbox (notification_id, user_id, event_seq, awaits_ack,
                                    collapse_key)
           SELECT n, u, s, a, $5
           FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bool[]) AS t (n, u, s, a)""",
        notification_ids, user_ids, event_seqs, awaits_ack, collapse_key,
    )


async def select_notifications(
    conn: asyncpg.Connection, user_id: str, *, unread_only: bool,
    after: tuple[datetime, str] | None, limit: int,
) -> list[asyncpg.Record]:
    """Newest first, strictly older than ``after`` (created_at, id) when given."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM notifications
            WHERE user_id = $1
              AND ($2::bool IS FALSE OR read_at IS NULL)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $5""",
        user_id, unread_only, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


async def select_unread_count(conn: asyncpg.Connection, user_id: str) -> int:
    value = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
    )
    return int(value)


async def update_notifications_read(
    conn: asyncpg.Connection, user_id: str, ids: list[str] | None
) -> None:
    """Mark read the given ids of the user's (others' and unknown ids are skipped), or all."""
    if ids is None:
        await conn.execute(
            "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
            user_id,
        )
    else:
        await conn.execute(
            "UPDATE notifications SET read_at = now() "
            "WHERE user_id = $1 AND id = ANY($2::uuid[]) AND read_at IS NULL",
            user_id, ids,
        )
