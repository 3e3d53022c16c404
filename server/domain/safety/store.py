"""Plain SQL for blocks and reports.

A block applies both ways. Every area that lists or reaches other users' things filters
with ``not_blocked(column, viewer)`` (a SQL fragment over the ``user_blocks`` indexes) or
asks ``blocked_between`` before acting.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg


def not_blocked(user_column: str, viewer_param: str) -> str:
    """A SQL condition: no block in either direction between ``user_column`` and the viewer
    (``viewer_param`` is a placeholder such as ``$1``; both are uuid expressions).

    Two separate NOT EXISTS (rather than one with OR) so that each is an anti-join on one
    index: the primary key (blocker_id, blocked_id) for the viewer's own blocks, and
    ``user_blocks_blocked`` (blocked_id, blocker_id) for blocks of the viewer."""
    return (f"(NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE "
            f"ub.blocker_id = {viewer_param} AND ub.blocked_id = {user_column}) AND "
            f"NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE "
            f"ub.blocker_id = {user_column} AND ub.blocked_id = {viewer_param}))")


async def blocked_between(conn: asyncpg.Connection, a: str, b: str) -> bool:
    """True if either user blocks the other."""
    found = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM user_blocks
                          WHERE (blocker_id = $1 AND blocked_id = $2)
                             OR (blocker_id = $2 AND blocked_id = $1))""",
        a, b,
    )
    return bool(found)


async def select_blocked_either_way(conn: asyncpg.Connection, user_id: str,
                                    others: list[str]) -> set[str]:
    """Which of ``others`` block ``user_id`` or are blocked by them."""
    rows = await conn.fetch(
        """SELECT blocked_id::text AS other FROM user_blocks
           WHERE blocker_id = $1 AND blocked_id = ANY($2::uuid[])
           UNION
           SELECT blocker_id::text FROM user_blocks
           WHERE blocked_id = $1 AND blocker_id = ANY($2::uuid[])""",
        user_id, others,
    )
    return {r["other"] for r in rows}


async def lock_user_pair(conn: asyncpg.Connection, a: str, b: str) -> None:
    """Serialise, until the transaction ends, everything that must see a block between the
    two users consistently: a block (which ends their live matches) and a new match."""
    low, high = sorted((a, b))
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"user-pair:{low}:{high}")


# --- blocks ---------------------------------------------------------------------------

async def select_user(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id::text AS id, display_name, role, banned_at FROM users WHERE id = $1",
        user_id,
    )
    return row


async def insert_block(conn: asyncpg.Connection, blocker_id: str, blocked_id: str) -> bool:
    """True if the block is new."""
    done = await conn.fetchval(
        """INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        blocker_id, blocked_id,
    )
    return bool(done)


async def delete_block(conn: asyncpg.Connection, blocker_id: str, blocked_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2",
        blocker_id, blocked_id,
    )
    return status.endswith(" 1")


async def select_blocked_users(
    conn: asyncpg.Connection, blocker_id: str, *, after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The users ``blocker_id`` blocked, most recent block first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT u.id::text AS id, u.display_name, u.role, b.created_at
           FROM user_blocks b JOIN users u ON u.id = b.blocked_id
           WHERE b.blocker_id = $1
             AND ($2::timestamptz IS NULL OR (b.created_at, b.blocked_id) < ($2, $3::uuid))
           ORDER BY b.created_at DESC, b.blocked_id DESC LIMIT $4""",
        blocker_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


async def select_live_matches_between(conn: asyncpg.Connection, a: str, b: str
                                      ) -> list[asyncpg.Record]:
    """Live matches between the two users (any of their pets), locked."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id::text AS id, conversation_id::text AS conversation_id,
                  user_a::text AS user_a, user_b::text AS user_b
           FROM matches
           WHERE unmatched_at IS NULL
             AND ((user_a = $1 AND user_b = $2) OR (user_a = $2 AND user_b = $1))
           ORDER BY id FOR UPDATE""",
        a, b,
    )
    return rows


# --- reports --------------------------------------------------------------------------

REPORT_COLUMNS = ("r.id::text AS id, r.status, r.target_kind, r.target_id::text AS target_id, "
                  "r.reason, r.note, r.created_at")


async def insert_report(
    conn: asyncpg.Connection, *, reporter_id: str, target_kind: str, target_id: str,
    target_owner_id: str | None, reason: str, note: str | None,
) -> asyncpg.Record | None:
    """The new open report, or None if the reporter has an open one of this target."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""INSERT INTO reports AS r (reporter_id, target_kind, target_id, target_owner_id,
                                      reason, note)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (reporter_id, target_kind, target_id) WHERE status = 'open'
            DO NOTHING
            RETURNING {REPORT_COLUMNS}""",
        reporter_id, target_kind, target_id, target_owner_id, reason, note,
    )
    return row


async def select_open_report(conn: asyncpg.Connection, *, reporter_id: str, target_kind: str,
                             target_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {REPORT_COLUMNS} FROM reports r
            WHERE r.reporter_id = $1 AND r.target_kind = $2 AND r.target_id = $3
              AND r.status = 'open'""",
        reporter_id, target_kind, target_id,
    )
    return row


# --- report targets: who owns them, if the reporter can see them ------------------------

async def select_visible_message_sender(conn: asyncpg.Connection, message_id: str,
                                        viewer_id: str) -> str | None:
    """The sender of a message in one of the viewer's conversations (not deleted)."""
    sender: str | None = await conn.fetchval(
        """SELECT m.sender_id::text FROM messages m
           JOIN conversation_members me ON me.conversation_id = m.conversation_id
                                       AND me.user_id = $2
           WHERE m.id = $1 AND m.deleted_at IS NULL""",
        message_id, viewer_id,
    )
    return sender
