"""Feature flags: stable rollout buckets, flags.get from the per-node cache, flags.updated to
every socket on every node within 2 s, admin.flags.set/list audited."""

from __future__ import annotations

import asyncio
import hashlib

from protocol.flags import AdminFlagsList, AdminFlagsSet, FlagsGet, rollout_bucket
from server.domain.flags.service import FlagService
from server.state import RUNTIME
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.support.waiting import until


def documented_bucket(key: str, user_id: str) -> int:
    """The formula docs/protocol.md gives clients, written out independently."""
    return int(hashlib.sha256(f"{key}:{user_id}".encode()).hexdigest()[:16], 16) % 100


def test_the_bucket_is_the_documented_one_and_spreads() -> None:
    users = [f"00000000-0000-4000-8000-{i:012d}" for i in range(2000)]
    assert all(rollout_bucket("new_feed", u) == documented_bucket("new_feed", u)
               for u in users)
    inside = sum(rollout_bucket("new_feed", u) < 25 for u in users)
    assert 400 < inside < 600  # ~25 % of 2000
    # Each flag picks its own users.
    assert [rollout_bucket("a", u) for u in users[:50]] != [
        rollout_bucket("b", u) for u in users[:50]]


async def test_a_change_reaches_every_socket_on_every_node_with_its_own_values(
        app_client: AppClient) -> None:
    node_a, node_b = await app_client(), await app_client()
    admin = await new_admin(node_a)
    users: list[User] = [await new_user(node_a, "A1"), await new_user(node_b, "B1"),
                         await new_user(node_b, "B2")]
    second_device = await users[1].connect()

    result = await admin.cmd(AdminFlagsSet(id=cid(), key="new_feed", enabled=True,
                                           rollout_percent=50))
    assert (result.flag.key, result.flag.enabled, result.flag.rollout_percent) == (
        "new_feed", True, 50)
    expected = {u.id: documented_bucket("new_feed", u.id) < 50 for u in users}
    got = await asyncio.gather(*(u.sock.expect("flags.updated", timeout=2.0) for u in users),
                               second_device.expect("flags.updated", timeout=2.0),
                               admin.sock.expect("flags.updated", timeout=2.0))
    for user, event in zip(users, got, strict=False):
        assert event.flags == {"new_feed": expected[user.id]}
    assert got[3].flags == {"new_feed": expected[users[1].id]}
    for user in users:  # flags.get agrees, on either node
        assert (await user.cmd(FlagsGet(id=cid()))).flags == {"new_feed": expected[user.id]}
        await user.sock.expect_nothing()  # exactly one flags.updated per change

    off = await admin.cmd(AdminFlagsSet(id=cid(), key="new_feed", enabled=False,
                                        rollout_percent=100))
    assert off.flag.enabled is False
    for user in users:
        assert (await user.sock.expect("flags.updated", timeout=2.0)).flags == {
            "new_feed": False}


async def test_flags_get_is_served_from_the_cache(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    user = await new_user(client)
    await admin.cmd(AdminFlagsSet(id=cid(), key="dark_mode", enabled=True))
    await user.sock.expect("flags.updated")
    assert (await user.cmd(FlagsGet(id=cid()))).flags == {"dark_mode": True}
    # A change behind the server's back is not seen by flags.get: no read per call.
    await pool_of(client).execute("UPDATE feature_flags SET enabled = false")
    assert (await user.cmd(FlagsGet(id=cid()))).flags == {"dark_mode": True}
    # A broadcast (what admin.flags.set sends) makes every node reload and tell its sockets.
    await client.server.app[RUNTIME].deps.node.broadcast("flags")
    assert (await user.sock.expect("flags.updated", timeout=2.0)).flags == {"dark_mode": False}
    assert (await user.cmd(FlagsGet(id=cid()))).flags == {"dark_mode": False}


async def test_a_lost_broadcast_is_repaired_by_the_periodic_reload(
        app_client: AppClient) -> None:
    client = await app_client(flags_refresh_s=0.2)
    user = await new_user(client)
    service = client.server.app[RUNTIME].commands.service(FlagService)
    await pool_of(client).execute(
        "INSERT INTO feature_flags (key, enabled, rollout_percent) VALUES ('beta', true, 100)")
    event = await user.sock.expect("flags.updated", timeout=2.0)
    assert event.flags == {"beta": True}
    await until(lambda: service.get(user.id).flags == {"beta": True}, timeout=2.0)


async def test_list_set_validation_and_audit(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    assert (await admin.cmd(AdminFlagsList(id=cid()))).flags == []
    await admin.cmd(AdminFlagsSet(id=cid(), key="b.flag", enabled=True, rollout_percent=10))
    await admin.cmd(AdminFlagsSet(id=cid(), key="a_flag", enabled=False))
    await admin.cmd(AdminFlagsSet(id=cid(), key="b.flag", enabled=True, rollout_percent=20))
    listed = (await admin.cmd(AdminFlagsList(id=cid()))).flags
    assert [(f.key, f.enabled, f.rollout_percent) for f in listed] == [
        ("a_flag", False, 100), ("b.flag", True, 20)]
    for bad in ('"key": "Upper"', '"key": ""', '"key": "ok", "rollout_percent": 101'):
        await admin.sock.send_raw(f'{{"type": "admin.flags.set", "id": "v", "enabled": true, '
                                  f'{bad}}}')
        reply = await admin.sock.receive()
        assert getattr(reply, "code", None) == "bad_request", reply
    entries = await audit_rows(client, action="admin.flags.set")
    assert [(e["target_kind"], e["target_id"], e["data"]) for e in entries] == [
        ("flag", "b.flag", {"enabled": True, "rollout_percent": 10, "previous": None}),
        ("flag", "a_flag", {"enabled": False, "rollout_percent": 100, "previous": None}),
        ("flag", "b.flag", {"enabled": True, "rollout_percent": 20,
                            "previous": {"enabled": True, "rollout_percent": 10}}),
    ]
