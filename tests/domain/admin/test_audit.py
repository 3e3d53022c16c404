"""The audit log: one entry per changing admin command, newest first with filters and a
cursor; the database refuses to change or delete an entry."""

from __future__ import annotations

import asyncpg
import pytest

from protocol.admin import AdminAudit, AdminBan, AdminSetRole, AdminUnban, AdminUsers
from protocol.flags import AdminFlagsList, AdminFlagsSet
from protocol.objects import Role
from tests.domain.admin.conftest import new_admin, pool_of
from tests.domain.conftest import AppClient, cid, new_user


async def test_each_changing_command_writes_one_entry_and_reads_write_none(
        app_client: AppClient) -> None:
    client = await app_client()
    admin, other = await new_admin(client), await new_user(client)
    user = await new_user(client, "Target")
    await admin.cmd(AdminUsers(id=cid()))                     # reads: no entry
    await admin.cmd(AdminFlagsList(id=cid()))
    await admin.cmd(AdminBan(id=cid(), user_id=user.id, reason="spam"))
    await admin.cmd(AdminUnban(id=cid(), user_id=user.id))
    await admin.cmd(AdminSetRole(id=cid(), user_id=other.id, role=Role.ADMIN))
    await admin.cmd(AdminFlagsSet(id=cid(), key="x", enabled=True))
    await admin.error(AdminBan(id=cid(), user_id=admin.id, reason="refused"))  # no entry

    entries = (await admin.cmd(AdminAudit(id=cid()))).entries
    assert [(e.action, e.target_id) for e in entries] == [       # newest first
        ("admin.flags.set", "x"),
        ("admin.set_role", other.id),
        ("admin.unban", user.id),
        ("admin.ban", user.id),
        ("cli.create_admin", admin.id),
    ]
    assert [e.actor_id for e in entries] == [admin.id] * 4 + [None]
    assert entries[3].reason == "spam" and entries[3].target_kind == "user"

    by_target = (await admin.cmd(AdminAudit(id=cid(), target_id=user.id))).entries
    assert [e.action for e in by_target] == ["admin.unban", "admin.ban"]
    by_action = (await admin.cmd(AdminAudit(id=cid(), action="admin.ban"))).entries
    assert [e.target_id for e in by_action] == [user.id]
    by_actor = (await admin.cmd(AdminAudit(id=cid(), actor_id=admin.id,
                                           action="admin.set_role"))).entries
    assert [e.target_id for e in by_actor] == [other.id]
    assert (await admin.cmd(AdminAudit(id=cid(), actor_id=other.id))).entries == []
    # Not an id: nothing matches, like an unknown id (server/ids.py).
    assert (await admin.cmd(AdminAudit(id=cid(), actor_id="nope"))).entries == []

    pages: list[str] = []
    cursor = None
    while True:
        page = await admin.cmd(AdminAudit(id=cid(), limit=2, cursor=cursor))
        pages += [e.id for e in page.entries]
        if (cursor := page.next_cursor) is None:
            break
    assert pages == [e.id for e in entries]


@pytest.mark.parametrize("statement", [
    "UPDATE admin_audit SET reason = 'rewritten'",
    "DELETE FROM admin_audit",
    "TRUNCATE admin_audit",
])
async def test_the_database_refuses_to_change_an_entry(app_client: AppClient, database_url: str,
                                                       statement: str) -> None:
    client = await app_client()
    admin, user = await new_admin(client), await new_user(client)
    await admin.cmd(AdminBan(id=cid(), user_id=user.id, reason="spam"))
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
    finally:
        await conn.close()
    rows = await pool_of(client).fetch("SELECT action, reason FROM admin_audit ORDER BY 1")
    assert [(r["action"], r["reason"]) for r in rows] == [("admin.ban", "spam"),
                                                         ("cli.create_admin", None)]
