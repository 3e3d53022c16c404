"""Plain SQL for conversations, members, messages and read marks."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from server.domain.safety.store import not_blocked


def message_columns(alias: str = "m", prefix: str = "") -> str:
    """The columns ``message_from_row`` reads, from table ``alias``, named ``prefix…``."""
    a, p = alias, prefix
    return (f"{a}.id::text AS {p}id, {a}.pos AS {p}pos, "
            f"{a}.conversation_id::text AS {p}conversation_id, "
            f"{a}.sender_id::text AS {p}sender_id, {a}.client_msg_id AS {p}client_msg_id, "
            f"{a}.body AS {p}body, {a}.attachment_ids::text[] AS {p}attachment_ids, "
            f"{a}.created_at AS {p}created_at, {a}.edited_at AS {p}edited_at, "
            f"{a}.deleted_at AS {p}deleted_at")


MESSAGE_COLUMNS = message_columns()


async def insert_conversation(conn: asyncpg.Connection, member_ids: list[str]) -> str:
    conversation_id: str = await conn.fetchval(
        "INSERT INTO conversations DEFAULT VALUES RETURNING id::text"
    )
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, user_id) "
        "SELECT $1, u FROM unnest($2::uuid[]) AS u",
        conversation_id, member_ids,
    )
    return conversation_id


async def update_conversation_closed(conn: asyncpg.Connection, conversation_id: str) -> None:
    await conn.execute(
        "UPDATE conversations SET closed_at = coalesce(closed_at, now()) WHERE id = $1",
        conversation_id,
    )


async def select_membership(conn: asyncpg.Connection, conversation_id: str, user_id: str
                            ) -> asyncpg.Record | None:
    """The conversation as ``user_id`` sees it, or None if they are not a member."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT c.id::text AS id, c.closed_at, me.last_read_pos,
                  (SELECT array_agg(cm.user_id::text ORDER BY cm.user_id)
                   FROM conversation_members cm WHERE cm.conversation_id = c.id) AS member_ids
           FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
           WHERE me.conversation_id = $1 AND me.user_id = $2""",
        conversation_id, user_id,
    )
    return row


async def select_message_for_member(
    conn: asyncpg.Connection, message_id: str, user_id: str, for_update: bool = False
) -> asyncpg.Record | None:
    """The message if ``user_id`` is a member of its conversation, with the conversation's
    state and members."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {MESSAGE_COLUMNS}, c.closed_at,
                   (SELECT array_agg(cm.user_id::text ORDER BY cm.user_id)
                    FROM conversation_members cm WHERE cm.conversation_id = c.id) AS member_ids
            FROM messages m
            JOIN conversations c ON c.id = m.conversation_id
            JOIN conversation_members me ON me.conversation_id = c.id AND me.user_id = $2
            WHERE m.id = $1""" + (" FOR UPDATE OF m" if for_update else ""),
        message_id, user_id,
    )
    return row


async def select_message_in_conversation(
    conn: asyncpg.Connection, conversation_id: str, message_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 AND m.conversation_id = $2",
        message_id, conversation_id,
    )
    return row


async def update_message_body(conn: asyncpg.Connection, message_id: str, body: str
                              ) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH m AS (UPDATE messages SET body = $2, edited_at = now() WHERE id = $1
                       RETURNING *)
            SELECT {MESSAGE_COLUMNS} FROM m""",
        message_id, body,
    )
    return row


async def update_message_deleted(conn: asyncpg.Connection, message_id: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH m AS (UPDATE messages SET body = '', attachment_ids = '{{}}',
                              deleted_at = now() WHERE id = $1 RETURNING *)
            SELECT {MESSAGE_COLUMNS} FROM m""",
        message_id,
    )
    return row


async def select_history(conn: asyncpg.Connection, conversation_id: str,
                         before_pos: int | None, limit: int) -> list[asyncpg.Record]:
    """Newest first, strictly older than ``before_pos``."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {MESSAGE_COLUMNS} FROM messages m
            WHERE m.conversation_id = $1 AND ($2::bigint IS NULL OR m.pos < $2)
            ORDER BY m.pos DESC LIMIT $3""",
        conversation_id, before_pos, limit,
    )
    return rows


async def update_read_mark(conn: asyncpg.Connection, conversation_id: str, user_id: str,
                           pos: int) -> bool:
    """Move the read mark forward to ``pos``; False if it was there or beyond already."""
    status = await conn.execute(
        "UPDATE conversation_members SET last_read_pos = $3 "
        "WHERE conversation_id = $1 AND user_id = $2 AND last_read_pos < $3",
        conversation_id, user_id, pos,
    )
    return bool(status.endswith(" 1"))


async def select_conversations(
    conn: asyncpg.Connection, user_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """The user's conversations with last message and unread count, newest activity first.

    Unread = others' messages (not deleted) after the user's read mark."""
    lm = message_columns("lm", "lm_")
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT c.id::text AS id, c.last_activity_at, c.closed_at,
                   (SELECT array_agg(cm.user_id::text ORDER BY cm.user_id)
                    FROM conversation_members cm WHERE cm.conversation_id = c.id) AS member_ids,
                   (SELECT mt.id::text FROM matches mt WHERE mt.conversation_id = c.id)
                       AS match_id,
                   (SELECT aa.listing_id::text FROM adoption_applications aa
                    WHERE aa.conversation_id = c.id LIMIT 1) AS listing_id,
                   (SELECT count(*) FROM messages x
                    WHERE x.conversation_id = c.id AND x.pos > me.last_read_pos
                      AND x.sender_id <> $1 AND x.deleted_at IS NULL) AS unread_count,
                   {lm}
            FROM conversation_members me
            JOIN conversations c ON c.id = me.conversation_id
            LEFT JOIN messages lm ON lm.id = c.last_message_id
            WHERE me.user_id = $1
              AND ($2::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($2, $3::uuid))
            ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $4""",
        user_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


async def select_member_ids(conn: asyncpg.Connection, conversation_id: str) -> list[str]:
    """The conversation's members (empty: no such conversation)."""
    ids: list[str] | None = await conn.fetchval(
        "SELECT array_agg(user_id::text ORDER BY user_id) FROM conversation_members "
        "WHERE conversation_id = $1", conversation_id)
    return list(ids or [])


SEND_STATEMENT = f"""
WITH conv AS (
    SELECT c.id, c.closed_at,
           (SELECT array_agg(cm.user_id ORDER BY cm.user_id)
            FROM conversation_members cm WHERE cm.conversation_id = c.id) AS member_ids,
           EXISTS (SELECT 1 FROM conversation_members o
                   WHERE o.conversation_id = c.id AND o.user_id <> $2
                     AND NOT {not_blocked("o.user_id", "$2")}) AS blocked
    FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
    WHERE me.conversation_id = $1 AND me.user_id = $2),
claim AS (
    INSERT INTO idempotency_keys (user_id, scope, key, result)
    SELECT $2, 'chat.send', $3, $7 FROM conv WHERE conv.closed_at IS NULL AND NOT conv.blocked
    ON CONFLICT DO NOTHING RETURNING 1),
m AS (
    INSERT INTO messages (id, conversation_id, sender_id, client_msg_id, body,
                          attachment_ids, created_at)
    SELECT $5, conv.id, $2, $3, $4, $6::uuid[], $8 FROM conv WHERE EXISTS (SELECT FROM claim)
    RETURNING id, conversation_id, created_at),
bump AS (
    UPDATE conversations SET last_message_id = m.id, last_activity_at = m.created_at
    FROM m WHERE conversations.id = m.conversation_id),
offline AS (
    SELECT o.user_id, o.note_id, o.part
    FROM unnest($11::uuid[], $12::uuid[], $13::bytea[]) AS o (user_id, note_id, part)),
targets AS (
    SELECT u AS user_id,
           (u <> $2 AND EXISTS (SELECT FROM offline o WHERE o.user_id = u))::int AS notes
    FROM conv, unnest(conv.member_ids) AS u WHERE EXISTS (SELECT FROM m)),
seqs AS (
    INSERT INTO user_streams AS s (user_id, last_seq, change_id)
    SELECT user_id, 1 + notes, nextval('user_streams_change_seq') FROM targets ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET last_seq = s.last_seq + excluded.last_seq, change_id = excluded.change_id
    RETURNING s.user_id, s.last_seq),
title AS (
    SELECT 'New message from ' || coalesce(nullif(
               (SELECT display_name FROM users WHERE id = $2), ''), 'Someone') AS text),
notes AS (
    INSERT INTO notifications (id, user_id, kind, title, body, data, created_at)
    SELECT o.note_id, o.user_id, 'chat.message', (SELECT text FROM title), $16, $17::jsonb, $8
    FROM offline o JOIN targets t ON t.user_id = o.user_id WHERE t.notes = 1),
ev AS (
    INSERT INTO events (user_id, seq, type, payload)
    SELECT s.user_id, s.last_seq - t.notes, 'chat.message',
           $9::bytea || convert_to((s.last_seq - t.notes)::text, 'UTF8') || $10::bytea
    FROM seqs s JOIN targets t ON t.user_id = s.user_id
    UNION ALL
    SELECT s.user_id, s.last_seq, 'notification',
           $14::bytea || convert_to(s.last_seq::text, 'UTF8') || o.part
           || convert_to(to_json((SELECT text FROM title))::text, 'UTF8') || $15::bytea
    FROM seqs s JOIN targets t ON t.user_id = s.user_id
    JOIN offline o ON o.user_id = s.user_id WHERE t.notes = 1),
push AS (
    INSERT INTO push_outbox (notification_id, user_id, event_seq, awaits_ack, collapse_key)
    SELECT o.note_id, s.user_id, s.last_seq, false, $18
    FROM seqs s JOIN targets t ON t.user_id = s.user_id
    JOIN offline o ON o.user_id = s.user_id WHERE t.notes = 1)
SELECT conv.id IS NOT NULL AS member, conv.closed_at, conv.blocked,
       EXISTS (SELECT FROM m) AS sent,
       (SELECT array_agg(s.user_id::text ORDER BY s.user_id) FROM seqs s) AS user_ids,
       (SELECT array_agg(s.last_seq ORDER BY s.user_id) FROM seqs s) AS last_seqs,
       (SELECT array_agg(t.notes ORDER BY t.user_id) FROM targets t) AS notes,
       convert_to(to_json((SELECT text FROM title))::text, 'UTF8') AS title_json
FROM (SELECT 1) AS one LEFT JOIN conv ON true"""
"""A whole ``chat.send`` in one statement (so one round trip, committed on its own): the
membership, block and closed checks; the idempotency claim with its result; the message
and the conversation's activity; each member's next seq (their ``user_streams`` rows
locked in user-id order) and ``chat.message`` event; and, for the members given as
offline, the notification, its event (the seq after) and its push. The event payloads
arrive encoded with their seq (and the notification's title, the sender's current
display name) cut out; the statement splices them in. Nothing is written unless the
message is (a replayed key, a non-member, a block or a closed conversation)."""
