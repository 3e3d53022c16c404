"""Plain SQL for devices, push preferences, the push outbox and the delivery records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

_DEVICE = "id::text AS id, platform, created_at"


# --- devices -------------------------------------------------------------------------------

async def upsert_device(
    conn: asyncpg.Connection, user_id: str, platform: str, token: str,
    p256dh: str | None = None, auth: str | None = None,
) -> asyncpg.Record:
    """The same (platform, token) keeps its id and moves to the newest user; a Web Push
    endpoint registered again takes the new keys."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO devices (user_id, platform, token, p256dh, auth)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (platform, token) DO UPDATE
            SET user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth,
                updated_at = now()
            RETURNING {_DEVICE}""",
        user_id, platform, token, p256dh, auth,
    )
    return row


async def delete_devices_over(conn: asyncpg.Connection, user_id: str, keep: int) -> int:
    """Keep the user's ``keep`` most recently registered devices; delete the rest."""
    status: str = await conn.execute(
        """DELETE FROM devices WHERE id IN (
               SELECT id FROM devices WHERE user_id = $1
               ORDER BY updated_at DESC, id DESC OFFSET $2)""",
        user_id, keep,
    )
    return int(status.split()[-1])


async def delete_device(conn: asyncpg.Connection, user_id: str, device_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM devices WHERE id = $1 AND user_id = $2", device_id, user_id
    )
    return status.endswith(" 1")


async def delete_devices_by_id(conn: asyncpg.Connection, device_ids: Sequence[str]) -> None:
    """Devices a provider says are gone (their pending deliveries go with them)."""
    await conn.execute("DELETE FROM devices WHERE id = ANY($1::uuid[])", list(device_ids))


async def select_devices(
    conn: asyncpg.Connection, user_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """Oldest first, strictly after ``after`` (created_at, id) when given."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_DEVICE} FROM devices
            WHERE user_id = $1
              AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
            ORDER BY created_at, id LIMIT $4""",
        user_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


# --- preferences -----------------------------------------------------------------------------

async def select_preferences(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT muted_kinds, push FROM notification_preferences WHERE user_id = $1", user_id
    )
    return row


async def upsert_preferences(
    conn: asyncpg.Connection, user_id: str, *, muted_kinds: list[str] | None,
    push: bool | None,
) -> asyncpg.Record:
    """Set the given fields (None: unchanged); the row as it is now."""
    row: asyncpg.Record = await conn.fetchrow(
        """INSERT INTO notification_preferences AS p (user_id, muted_kinds, push)
           VALUES ($1, coalesce($2::text[], '{}'), coalesce($3::bool, true))
           ON CONFLICT (user_id) DO UPDATE
           SET muted_kinds = coalesce($2::text[], p.muted_kinds),
               push = coalesce($3::bool, p.push), updated_at = now()
           RETURNING muted_kinds, push""",
        user_id, muted_kinds, push,
    )
    return row


# --- the outbox --------------------------------------------------------------------------------

CLAIM_DUE_OUTBOX = """WITH due_now AS (
               SELECT id FROM push_outbox
               WHERE handled_at IS NULL AND NOT awaits_ack AND created_at <= now()
               ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
           ), due_later AS (
               SELECT id FROM push_outbox
               WHERE handled_at IS NULL AND awaits_ack
                 AND created_at <= now() - $1 * interval '1 second'
               ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
           )
           SELECT o.id, o.user_id::text AS user_id, o.event_seq, o.collapse_key, o.created_at,
                  n.kind, n.read_at IS NOT NULL AS read,
                  coalesce(a.acked_seq, 0) AS acked_seq,
                  coalesce(p.push, true) AS push_on,
                  coalesce(p.muted_kinds, '{}') AS muted_kinds,
                  (o.collapse_key IS NOT NULL AND EXISTS (
                      SELECT 1 FROM push_outbox newer
                      WHERE newer.user_id = o.user_id AND newer.collapse_key = o.collapse_key
                        AND newer.id > o.id)) AS superseded,
                  EXISTS (SELECT 1 FROM devices d WHERE d.user_id = o.user_id) AS has_devices
           FROM push_outbox o
           JOIN notifications n ON n.id = o.notification_id
           LEFT JOIN stream_acks a ON a.user_id = o.user_id
           LEFT JOIN notification_preferences p ON p.user_id = o.user_id
           WHERE o.id IN (SELECT id FROM due_now UNION ALL SELECT id FROM due_later)
           ORDER BY o.id"""


async def claim_due_outbox(conn: asyncpg.Connection, delay_s: float, limit: int
                           ) -> list[asyncpg.Record]:
    """Lock (SKIP LOCKED) up to ``limit`` due rows of each kind, with everything the
    decision needs. Must run in a transaction that then marks every row handled."""
    rows: list[asyncpg.Record] = await conn.fetch(
        CLAIM_DUE_OUTBOX,
        delay_s, limit,
    )
    return rows


async def update_outbox_handled(conn: asyncpg.Connection, ids: Sequence[int],
                                outcomes: Sequence[str]) -> None:
    await conn.execute(
        """UPDATE push_outbox o SET handled_at = now(), outcome = h.outcome
           FROM unnest($1::bigint[], $2::text[]) AS h(id, outcome) WHERE o.id = h.id""",
        list(ids), list(outcomes),
    )


async def insert_deliveries(conn: asyncpg.Connection, outbox_ids: Sequence[int],
                            user_ids: Sequence[str]) -> dict[int, int]:
    """One pending delivery per (row, device the user has now); outbox id → devices."""
    rows = await conn.fetch(
        """INSERT INTO push_deliveries (outbox_id, device_id)
           SELECT o.id, d.id FROM unnest($1::bigint[], $2::uuid[]) AS o(id, user_id)
           JOIN devices d ON d.user_id = o.user_id
           ON CONFLICT DO NOTHING
           RETURNING outbox_id""",
        list(outbox_ids), list(user_ids),
    )
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["outbox_id"]] = counts.get(r["outbox_id"], 0) + 1
    return counts


# --- deliveries ----------------------------------------------------------------------------------

CLAIM_DELIVERIES = """WITH picked AS (
               SELECT outbox_id, device_id FROM push_deliveries
               WHERE state = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
           ), expired AS (
               SELECT outbox_id, device_id FROM push_deliveries
               WHERE state = 'sending' AND lease_until < now()
               ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED
           ), chosen AS (
               SELECT * FROM picked UNION ALL SELECT * FROM expired LIMIT $1
           ), claimed AS (
               UPDATE push_deliveries d
               SET state = 'sending', attempts = d.attempts + 1,
                   lease_until = now() + $2 * interval '1 second', updated_at = now()
               FROM chosen c WHERE d.outbox_id = c.outbox_id AND d.device_id = c.device_id
               RETURNING d.outbox_id, d.device_id, d.attempts
           )
           SELECT c.outbox_id, c.device_id::text AS device_id, c.attempts,
                  o.user_id::text AS user_id, o.collapse_key, o.created_at,
                  n.id::text AS notification_id, n.kind, n.title, n.body, n.data,
                  n.read_at IS NOT NULL AS read,
                  dv.platform, dv.token, dv.p256dh, dv.auth,
                  dv.user_id = o.user_id AS same_owner,
                  coalesce(coalesce(a.acked_seq, 0) >= o.event_seq, false) AS acked,
                  coalesce(p.push, true) AS push_on,
                  n.kind = ANY(coalesce(p.muted_kinds, '{}')) AS muted
           FROM claimed c
           JOIN push_outbox o ON o.id = c.outbox_id
           JOIN notifications n ON n.id = o.notification_id
           JOIN devices dv ON dv.id = c.device_id
           LEFT JOIN stream_acks a ON a.user_id = o.user_id
           LEFT JOIN notification_preferences p ON p.user_id = o.user_id"""


async def claim_deliveries(conn: asyncpg.Connection, limit: int, lease_s: float
                           ) -> list[asyncpg.Record]:
    """Claim up to ``limit`` deliveries that are due (pending, or 'sending' under a lease
    that expired: its worker died): commit state 'sending' with a new lease and the attempt
    number. Returns what sending needs, and what may have changed since the row was queued
    (acked, read, push turned off, kind muted, device moved to another user)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        CLAIM_DELIVERIES,
        limit, lease_s,
    )
    return rows


async def select_unread_counts(conn: asyncpg.Connection, user_ids: Sequence[str]
                               ) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT user_id::text AS user_id, count(*) AS unread FROM notifications
           WHERE user_id = ANY($1::uuid[]) AND read_at IS NULL GROUP BY user_id""",
        list(set(user_ids)),
    )
    return {r["user_id"]: int(r["unread"]) for r in rows}


async def update_deliveries_finished(conn: asyncpg.Connection, results: Sequence[Any]) -> None:
    """Record each attempt's outcome, only where that attempt still owns the row (a
    worker whose lease ran out must not overwrite a newer attempt). ``results`` have
    outbox_id, device_id, attempt, state, provider, status, reason, retry_in_s."""
    await conn.execute(
        """UPDATE push_deliveries d
           SET state = r.state, provider = r.provider, status = r.status, reason = r.reason,
               next_attempt_at = CASE WHEN r.retry_in_s IS NULL THEN d.next_attempt_at
                                      ELSE now() + r.retry_in_s * interval '1 second' END,
               lease_until = NULL, updated_at = now()
           FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::text[], $5::text[],
                       $6::int[], $7::text[], $8::float8[])
                AS r(outbox_id, device_id, attempt, state, provider, status, reason,
                     retry_in_s)
           WHERE d.outbox_id = r.outbox_id AND d.device_id = r.device_id
             AND d.attempts = r.attempt AND d.state = 'sending'""",
        [r.outbox_id for r in results], [r.device_id for r in results],
        [r.attempt for r in results], [r.state for r in results],
        [r.provider for r in results], [r.status for r in results],
        [r.reason for r in results], [r.retry_in_s for r in results],
    )


NEXT_DUE = """SELECT extract(epoch FROM least(
               (SELECT min(created_at) FROM push_outbox
                WHERE handled_at IS NULL AND NOT awaits_ack),
               (SELECT min(created_at) + $1 * interval '1 second' FROM push_outbox
                WHERE handled_at IS NULL AND awaits_ack),
               (SELECT min(next_attempt_at) FROM push_deliveries WHERE state = 'pending'),
               (SELECT min(lease_until) FROM push_deliveries WHERE state = 'sending')
           ) - now())"""


async def select_next_due_s(conn: asyncpg.Connection, delay_s: float) -> float | None:
    """Seconds until the next outbox row or delivery is due (≤ 0: now); None if nothing
    is waiting."""
    value = await conn.fetchval(
        NEXT_DUE,
        delay_s,
    )
    return None if value is None else float(value)


async def delete_handled_outbox(conn: asyncpg.Connection, older_than_s: float,
                                batch: int = 5000) -> int:
    """Forget rows handled long ago whose deliveries are all final (safe on every node)."""
    status: str = await conn.execute(
        """DELETE FROM push_outbox WHERE id IN (
               SELECT id FROM push_outbox o
               WHERE handled_at < now() - $1 * interval '1 second'
                 AND NOT EXISTS (SELECT 1 FROM push_deliveries d WHERE d.outbox_id = o.id
                                 AND d.state IN ('pending', 'sending'))
               LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        older_than_s, batch,
    )
    return int(status.split()[-1])
