"""Admin tests: users made admin through the real bootstrap path (``create-admin``'s
function), driven over the real socket."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from server.domain.admin.bootstrap import create_admin
from server.state import RUNTIME
from tests.domain.conftest import User, new_user


def pool_of(client: TestClient[Any, Any]) -> asyncpg.Pool:
    pool: asyncpg.Pool = client.server.app[RUNTIME].deps.db
    return pool


async def make_admin(client: TestClient[Any, Any], user: User) -> None:
    """What ``python -m server create-admin EMAIL`` does; the open socket may use admin
    commands at once (the guard reads the stored role)."""
    await create_admin(pool_of(client), user.reg.email)


async def new_admin(client: TestClient[Any, Any], name: str = "Admin") -> User:
    user = await new_user(client, name)
    await make_admin(client, user)
    return user


async def audit_rows(client: TestClient[Any, Any], **where: str) -> list[asyncpg.Record]:
    """The audit table itself (not the command), oldest first."""
    conditions = " AND ".join(f"{k} = ${i}" for i, k in enumerate(where, 1)) or "true"
    rows: list[asyncpg.Record] = await pool_of(client).fetch(
        f"SELECT action, target_kind, target_id, actor_id::text AS actor_id, reason, data "
        f"FROM admin_audit WHERE {conditions} ORDER BY created_at", *where.values())
    return rows
