"""Plain SQL for feature flags (``feature_flags``, ``0011_admin.sql``)."""

from __future__ import annotations

import asyncpg

_COLUMNS = "key, enabled, rollout_percent, updated_at"


async def select_flags(db: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        f"SELECT {_COLUMNS} FROM feature_flags ORDER BY key")
    return rows


async def select_flag_for_update(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM feature_flags WHERE key = $1 FOR UPDATE", key)
    return row


async def upsert_flag(conn: asyncpg.Connection, key: str, enabled: bool, rollout_percent: int,
                      updated_by: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO feature_flags (key, enabled, rollout_percent, updated_by)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (key) DO UPDATE SET enabled = excluded.enabled,
                rollout_percent = excluded.rollout_percent, updated_at = now(),
                updated_by = excluded.updated_by
            RETURNING {_COLUMNS}""",
        key, enabled, rollout_percent, updated_by,
    )
    return row
