"""admin.ban / admin.unban: sockets close 4003 on every node within 2 s, every credential and
login is refused, the user's pets vanish for others until unbanned; all audited."""

from __future__ import annotations

import asyncio

from protocol.admin import AdminBan, AdminUnban
from protocol.matching import DiscoveryCandidates
from tests.conftest import TEST_ORIGIN
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, cid, new_user
from tests.support.ws import connect, open_session

API = "/api/v1/auth"


async def test_ban_closes_every_socket_on_every_node_within_2_s(
        app_client: AppClient) -> None:
    node_a, node_b = await app_client(), await app_client()
    admin = await new_admin(node_a)
    victim = await new_user(node_b, "Victim")
    on_a = await open_session(node_a, victim.reg.access_token)
    bystander = await new_user(node_b, "Bystander")

    banned = await admin.cmd(AdminBan(id=cid(), user_id=victim.id, reason="  spam bot  "))
    assert banned.user.id == victim.id and banned.user.banned_at is not None
    assert banned.user.ban_reason == "spam bot"
    await asyncio.gather(victim.sock.expect_close(4003, timeout=2.0),
                         on_a.expect_close(4003, timeout=2.0))
    await bystander.sock.expect_nothing()

    # Every credential is refused from now on, on either node.
    for node in (node_a, node_b):
        fresh = await connect(node, token=victim.reg.access_token)
        await fresh.expect_close(4003)
        assert (await node.get(f"{API}/me", headers=victim.reg.bearer)).status == 403
        cookie = "; ".join(f"{k}={v}" for k, v in victim.reg.cookies.items())
        resp = await node.get(f"{API}/me", headers={"Cookie": cookie, "Origin": TEST_ORIGIN})
        assert resp.status == 403
        login = await node.post(f"{API}/login", json={"email": victim.reg.email,
                                                      "password": victim.reg.password})
        assert login.status == 403
        refresh = await node.post(f"{API}/refresh",
                                  json={"refresh_token": victim.reg.refresh_token})
        assert refresh.status == 403

    [entry] = await audit_rows(node_a, action="admin.ban")
    assert (entry["actor_id"], entry["target_kind"], entry["target_id"], entry["reason"]) == (
        admin.id, "user", victim.id, "spam bot")


async def test_banned_users_pets_are_hidden_until_unbanned(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    owner, viewer = await new_user(client, "Owner"), await new_user(client, "Viewer")
    pet = await owner.pet("Rex")
    mine = await viewer.pet("Tom")

    async def visible() -> bool:
        found = await viewer.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=50))
        return pet.id in {c.pet.id for c in found.candidates}

    assert await visible()
    await admin.cmd(AdminBan(id=cid(), user_id=owner.id, reason="scam"))
    assert not await visible()
    unbanned = await admin.cmd(AdminUnban(id=cid(), user_id=owner.id))
    assert unbanned.user.banned_at is None and unbanned.user.ban_reason is None
    assert await visible()
    # The ban revoked every session: the user logs in again (and may).
    login = await client.post(f"{API}/login", json={"email": owner.reg.email,
                                                    "password": owner.reg.password})
    assert login.status == 200
    stale = await connect(client, token=owner.reg.access_token)
    await stale.expect_close(4001)
    assert [e["action"] for e in await audit_rows(client, target_id=owner.id)] == [
        "admin.ban", "admin.unban"]


async def test_ban_refusals_write_nothing(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    itself = await admin.error(AdminBan(id=cid(), user_id=admin.id, reason="oops"))
    assert itself.code == "bad_request" and "yourself" in itself.message
    blank = await admin.error(AdminBan(id=cid(), user_id=admin.id, reason="   "))
    assert blank.code == "bad_request"
    for missing in ("00000000-0000-4000-8000-000000000000", "not-an-id"):
        assert (await admin.error(AdminBan(id=cid(), user_id=missing, reason="x"))).code == \
            "not_found"
        assert (await admin.error(AdminUnban(id=cid(), user_id=missing))).code == "not_found"
    assert await audit_rows(client, action="admin.ban") == []
    assert await pool_of(client).fetchval("SELECT banned_at FROM users WHERE id = $1",
                                          admin.id) is None
    await admin.sock.expect_nothing()


async def test_banning_twice_keeps_the_first_time_and_logs_both(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    victim = await new_user(client)
    first = (await admin.cmd(AdminBan(id=cid(), user_id=victim.id, reason="spam"))).user
    second = (await admin.cmd(AdminBan(id=cid(), user_id=victim.id, reason="more spam"))).user
    assert second.banned_at == first.banned_at and second.ban_reason == "more spam"
    assert [e["data"]["changed"] for e in await audit_rows(client, action="admin.ban")] == [
        True, False]
