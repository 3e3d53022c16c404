"""Plain SQL for the admin area: accounts (search, role), and the moderation queue's items.

The search uses the trigram GIN index of ``0011_admin.sql`` (``users_search_grams``): a
query of three or more characters asks ``admin_user_grams(email, display_name) @>
admin_grams(query)`` (the index) and then checks the real substring with ``strpos``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# email_verified: set by the e-mail verification link (migration 0010, issue #14).
USER_COLUMNS = ("u.id::text AS id, u.display_name, u.role, u.email, u.email_verified, "
                "u.created_at, u.banned_at, u.ban_reason")

MIN_GRAM_QUERY = 3
"""Shorter queries have no trigram: they are a scan (newest first, up to the page)."""


def users_query(*, query: str | None, role: str | None, banned: bool | None,
                after: tuple[datetime, str] | None, limit: int) -> tuple[str, list[Any]]:
    """The SQL and arguments of an ``admin.users`` page (newest account first). Only the
    filters given are in the SQL, so each combination is planned for what it asks."""
    where: list[str] = []
    args: list[Any] = []
    if query is not None:
        args.append(query)
        n = len(args)
        if len(query) >= MIN_GRAM_QUERY:
            where.append(f"admin_user_grams(u.email, u.display_name) @> admin_grams(${n})")
        where.append(f"(strpos(lower(u.email), lower(${n})) > 0 "
                     f"OR strpos(lower(u.display_name), lower(${n})) > 0)")
    if role is not None:
        args.append(role)
        where.append(f"u.role = ${len(args)}")
    if banned is not None:
        where.append("u.banned_at IS NOT NULL" if banned else "u.banned_at IS NULL")
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"(u.created_at, u.id) < (${len(args) - 1}, ${len(args)}::uuid)")
    args.append(limit)
    sql = (f"SELECT {USER_COLUMNS} FROM users u"
           + (f" WHERE {' AND '.join(where)}" if where else "")
           + f" ORDER BY u.created_at DESC, u.id DESC LIMIT ${len(args)}")
    return sql, args


async def select_users(db: asyncpg.Pool | asyncpg.Connection, **filters: Any
                       ) -> list[asyncpg.Record]:
    sql, args = users_query(**filters)
    rows: list[asyncpg.Record] = await db.fetch(sql, *args)
    return rows


async def select_user(db: asyncpg.Pool | asyncpg.Connection, user_id: str, *,
                      for_update: bool = False) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        + (" FOR NO KEY UPDATE" if for_update else ""),
        user_id,
    )
    return row


async def select_user_by_email(db: asyncpg.Pool | asyncpg.Connection, email: str
                               ) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users u WHERE lower(u.email) = lower($1)", email
    )
    return row


async def update_user_role(conn: asyncpg.Connection, user_id: str, role: str) -> None:
    await conn.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, role)


# --- moderation items ------------------------------------------------------------------------

ITEM_COLUMNS = ("i.id::text AS id, i.kind, i.target_id::text AS target_id, i.status, "
                "i.reasons, i.report_count, i.created_at, i.resolved_at, i.decision, "
                "i.decision_reason, i.decided_by::text AS decided_by")


def queue_query(*, kind: str | None, status: str, after: tuple[datetime, str] | None,
                limit: int) -> tuple[str, list[Any]]:
    """One page of the queue: open items oldest first (``created_at``), resolved ones
    most recently resolved first (``resolved_at``); each order has a partial index."""
    args: list[Any] = [status]
    where = ["i.status = $1"]
    if kind is not None:
        args.append(kind)
        where.append(f"i.kind = ${len(args)}")
    if status == "open":
        column, order, cmp = "i.created_at", "ASC", ">"
    else:
        column, order, cmp = "i.resolved_at", "DESC", "<"
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"({column}, i.id) {cmp} (${len(args) - 1}, ${len(args)}::uuid)")
    args.append(limit)
    sql = (f"SELECT {ITEM_COLUMNS} FROM moderation_items i WHERE {' AND '.join(where)} "
           f"ORDER BY {column} {order}, i.id {order} LIMIT ${len(args)}")
    return sql, args


async def select_items(db: asyncpg.Pool | asyncpg.Connection, **filters: Any
                       ) -> list[asyncpg.Record]:
    sql, args = queue_query(**filters)
    rows: list[asyncpg.Record] = await db.fetch(sql, *args)
    return rows


async def select_item_for_update(conn: asyncpg.Connection, item_id: str
                                 ) -> asyncpg.Record | None:
    """The item, locked: of two decisions at once the second waits, then sees it resolved."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {ITEM_COLUMNS} FROM moderation_items i WHERE i.id = $1 FOR UPDATE", item_id
    )
    return row


async def update_item_resolved(conn: asyncpg.Connection, item_id: str, *, decision: str,
                               reason: str | None, decided_by: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE moderation_items AS i
            SET status = 'resolved', resolved_at = now(), updated_at = now(), decision = $2,
                decision_reason = $3, decided_by = $4
            WHERE i.id = $1 RETURNING {ITEM_COLUMNS}""",
        item_id, decision, reason, decided_by,
    )
    return row


async def update_reports_resolved(conn: asyncpg.Connection, kind: str, target_id: str) -> int:
    """Resolve the target's open reports (they were the item's); how many."""
    status: str = await conn.execute(
        "UPDATE reports SET status = 'resolved', resolved_at = now() "
        "WHERE target_kind = $1 AND target_id = $2 AND status = 'open'",
        kind, target_id,
    )
    return int(status.split()[-1])
