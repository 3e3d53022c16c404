"""Plain SQL for blocks and reports.

A block applies both ways. Every area that lists or reaches other users' things filters
with ``not_blocked(column, viewer)`` (a SQL fragment over the ``user_blocks`` indexes) or
asks ``blocked_between`` before acting.
"""

from __future__ import annotations

import asyncpg


def not_blocked(user_column: str, viewer_param: str) -> str:
    """A SQL condition: no block in either direction between ``user_column`` and the viewer
    (``viewer_param`` is a placeholder such as ``$1``; both are uuid expressions)."""
    return (f"NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE "
            f"(ub.blocker_id = {viewer_param} AND ub.blocked_id = {user_column}) OR "
            f"(ub.blocker_id = {user_column} AND ub.blocked_id = {viewer_param}))")


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
