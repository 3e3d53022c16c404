"""The audit log: one entry per admin command that changed something, written in that
command's transaction (``record``), read newest first (``select_entries``).

The table refuses UPDATE, DELETE and TRUNCATE by trigger (``0011_admin.sql``), so an entry,
once committed, stays as written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from protocol.admin import AuditEntry

_COLUMNS = ("id::text AS id, actor_id::text AS actor_id, action, target_kind, target_id, "
            "reason, data, created_at")


def entry_from_row(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(id=row["id"], actor_id=row["actor_id"], action=row["action"],
                      target_kind=row["target_kind"], target_id=row["target_id"],
                      reason=row["reason"], data=dict(row["data"]),
                      created_at=row["created_at"])


async def record(conn: asyncpg.Connection, *, actor_id: str | None, action: str,
                 target_kind: str, target_id: str, reason: str | None = None,
                 data: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry (call inside the change's transaction)."""
    row = await conn.fetchrow(
        f"""INSERT INTO admin_audit (actor_id, action, target_kind, target_id, reason, data)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING {_COLUMNS}""",
        actor_id, action, target_kind, target_id, reason or None, data or {},
    )
    assert row is not None
    return entry_from_row(row)


async def select_entries(
    db: asyncpg.Pool | asyncpg.Connection, *, actor_id: str | None, action: str | None,
    target_id: str | None, after: tuple[datetime, str] | None, limit: int,
) -> list[asyncpg.Record]:
    """Newest first, strictly older than ``after`` (created_at, id). Only the filters given
    are in the SQL (not ``$1 IS NULL OR …``), so each combination gets a plan that uses the
    index leading with its filter."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("actor_id", actor_id), ("action", action),
                          ("target_id", target_id)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if after is not None:
        args += [after[0], after[1]]
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)}::uuid)")
    args.append(limit)
    sql = (f"SELECT {_COLUMNS} FROM admin_audit"
           + (f" WHERE {' AND '.join(where)}" if where else "")
           + f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}")
    rows: list[asyncpg.Record] = await db.fetch(sql, *args)
    return rows
