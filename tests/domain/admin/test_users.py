"""admin.users (search over the trigram index), admin.set_role."""

from __future__ import annotations

import json
import uuid

from protocol.admin import AdminSetRole, AdminUsers
from protocol.objects import Role
from server.domain.admin.store import users_query
from tests.auth.test_account import link_token, mail_for, mail_settings
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, cid, new_user
from tests.support.auth import register
from tests.support.peers import smtp_server  # noqa: F401 - fixture
from tests.support.smtp import SmtpServer
from tests.support.ws import open_session


async def test_search_is_a_case_insensitive_substring_of_email_or_name(
        app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client, "Root")
    tag = uuid.uuid4().hex[:8]
    lola = await register(client, email=f"lola.{tag}@pets.example", display_name="Lola Barker")
    max_ = await register(client, email=f"max.{tag}@dogs.example", display_name="Max Müller")
    await register(client, email=f"zed.{tag}@cats.example", display_name="Zed")

    async def ids(query: str) -> set[str]:
        result = await admin.cmd(AdminUsers(id=cid(), query=query))
        return {u.id for u in result.users}

    assert await ids(f"LOLA.{tag.upper()}") == {lola.user_id}   # email, any case
    assert await ids("barK") == {lola.user_id}                  # display name, mid-word
    assert await ids("MÜLLER") == {max_.user_id}                # non-ASCII lower-casing
    assert await ids(f"{tag}@dogs") == {max_.user_id}
    assert await ids("ax") == {max_.user_id}                    # 2 chars: no trigram, scan
    assert await ids("nobody-has-this") == set()
    # A query spanning email and name is not a substring of either.
    assert await ids(f"{tag}@pets.example lola") == set()
    found = (await admin.cmd(AdminUsers(id=cid(), query=f"lola.{tag}"))).users[0]
    assert found.email == f"lola.{tag}@pets.example" and found.role == Role.USER
    assert found.display_name == "Lola Barker" and found.email_verified is False
    assert found.banned_at is None and found.ban_reason is None


async def test_email_verified_is_what_the_verification_link_set(
        app_client: AppClient, smtp_server: SmtpServer) -> None:  # noqa: F811 - fixture
    client = await app_client(**mail_settings(smtp_server))
    admin = await new_admin(client)
    tag = uuid.uuid4().hex[:8]
    checked = await register(client, email=f"checked.{tag}@pets.example")
    unchecked = await register(client, email=f"unchecked.{tag}@pets.example")
    resp = await client.post("/api/v1/auth/email/verify-request", headers=checked.bearer)
    assert resp.status == 202
    token = link_token(await mail_for(smtp_server, checked.email, "Confirm"), "/verify-email")
    resp = await client.post("/api/v1/auth/email/verify", json={"token": token})
    assert resp.status == 200

    found = (await admin.cmd(AdminUsers(id=cid(), query=tag))).users
    assert {u.id: u.email_verified for u in found} == {checked.user_id: True,
                                                       unchecked.user_id: False}


async def test_filters_and_pages_newest_first(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    made = [(await register(client, display_name=f"Page {i}")).user_id for i in range(5)]
    await pool_of(client).execute("UPDATE users SET banned_at = now() WHERE id = $1", made[1])

    seen: list[str] = []
    cursor = None
    while True:
        page = await admin.cmd(AdminUsers(id=cid(), query="page", limit=2, cursor=cursor))
        assert len(page.users) <= 2
        seen += [u.id for u in page.users]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, nothing skipped or repeated

    admins = await admin.cmd(AdminUsers(id=cid(), role=Role.ADMIN))
    assert [u.id for u in admins.users] == [admin.id]
    banned = await admin.cmd(AdminUsers(id=cid(), banned=True))
    assert [u.id for u in banned.users] == [made[1]] and banned.users[0].banned_at
    unbanned = await admin.cmd(AdminUsers(id=cid(), banned=False, query="page"))
    assert made[1] not in {u.id for u in unbanned.users} and len(unbanned.users) == 4
    bad = await admin.error(AdminUsers(id=cid(), cursor="garbage"))
    assert bad.code == "bad_request"


async def test_search_uses_the_trigram_index(app_client: AppClient) -> None:
    client = await app_client()
    pool = pool_of(client)
    await pool.execute(
        """INSERT INTO users (email, display_name, password_hash)
           SELECT 'bulk' || md5(i::text) || '@example.com', 'Bulk ' || md5((i * 7)::text), 'x'
           FROM generate_series(1, 5000) AS i""")
    await pool.execute("ANALYZE users")
    for query in ("3f2a9", "bulk 1c"):
        sql, args = users_query(query=query, role=None, banned=None, after=None, limit=51)
        async with pool.acquire() as conn:
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        assert "users_search_grams" in json.dumps(plan), plan


async def test_set_role_takes_effect_at_once_and_is_audited(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    user = await new_user(client)
    changed = await admin.cmd(AdminSetRole(id=cid(), user_id=user.id, role=Role.ADMIN))
    assert changed.user.role == Role.ADMIN
    # The user's sockets close 4001 (reconnect with the new role)...
    await user.sock.expect_close(4001)
    sock = await open_session(client, user.reg.access_token)
    listed = await sock.command(AdminUsers(id=cid()))
    assert {u.id for u in listed.users} >= {admin.id, user.id}
    # ...and a demotion shuts admin commands on the open socket at once.
    await admin.cmd(AdminSetRole(id=cid(), user_id=user.id, role=Role.USER))
    await sock.expect_close(4001)
    again = await open_session(client, user.reg.access_token)
    reply = await again.request(AdminUsers(id=cid()))
    assert getattr(reply, "code", None) == "forbidden"

    # Setting the role it already has changes nothing and closes nothing.
    same = await admin.cmd(AdminSetRole(id=cid(), user_id=user.id, role=Role.USER))
    assert same.user.role == Role.USER
    await again.expect_nothing()

    entries = await audit_rows(client, action="admin.set_role")
    assert [(e["target_id"], e["data"]) for e in entries] == [
        (user.id, {"role": "admin", "previous": "user", "changed": True}),
        (user.id, {"role": "user", "previous": "admin", "changed": True}),
        (user.id, {"role": "user", "previous": "user", "changed": False}),
    ]
    assert {e["actor_id"] for e in entries} == {admin.id}


async def test_set_role_refusals(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    own = await admin.error(AdminSetRole(id=cid(), user_id=admin.id, role=Role.USER))
    assert own.code == "bad_request" and "own role" in own.message
    for missing in ("00000000-0000-4000-8000-000000000000", "nope"):
        error = await admin.error(AdminSetRole(id=cid(), user_id=missing, role=Role.ADMIN))
        assert error.code == "not_found"
    assert await audit_rows(client, action="admin.set_role") == []
