"""admin.ban / admin.unban: sockets close 4003 on every node within 2 s, every credential and
login is refused, the user's live stream ends at once, their pets, listings, posts,
comments and streams vanish for others until unbanned (their open lost alerts stay); all
audited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from protocol.admin import (
    AdminBan,
    AdminModerationDecide,
    AdminModerationQueue,
    AdminSetRole,
    AdminUnban,
    AdminUsers,
    ModerationDecision,
    ModerationKind,
)
from protocol.adoption import AdoptionListing, AdoptionListings
from protocol.community import FeedScope, PostsComment, PostsComments, PostsFeed, PostsGet
from protocol.live import LiveJoin, LiveLeave, LiveList
from protocol.lost import LostNearby, LostReport, LostSightingCommand
from protocol.matching import DiscoveryCandidates, Swipe, SwipeDirection
from protocol.objects import Role
from protocol.safety import ReportReason, ReportsCreate, ReportTarget, ReportTargetKind
from protocol.session import Error, Hello, Ok
from server.state import RUNTIME
from tests.conftest import TEST_ORIGIN
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.live.helpers import go_live, join, next_of
from tests.domain.social import HERE, listing, post
from tests.support.ws import ProtocolSocket, connect, open_session

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


@contextlib.asynccontextmanager
async def racing_socket(node: TestClient[Any, Any], user: User,
                        change: Callable[[], Awaitable[object]]
                        ) -> AsyncIterator[ProtocolSocket]:
    """A socket of ``user`` opening on ``node``, with ``change`` (and its kick) run wholly
    inside the window after the handshake's credential check and before the node routes
    the user to itself. The node's routes are themselves again after the block."""
    routes = node.app[RUNTIME].deps.node.routes
    route_add = routes.add

    async def change_first(node_id: str, user_id: str) -> None:
        if user_id == user.id:
            await change()
        await route_add(node_id, user_id)

    routes.add = change_first  # type: ignore[method-assign]
    try:
        sock = await connect(node, token=user.reg.access_token)
        await sock.send(Hello())
        yield sock
    finally:
        routes.add = route_add  # type: ignore[method-assign]


async def test_a_ban_racing_a_new_socket_still_closes_it(app_client: AppClient) -> None:
    """The ban commits and its kick reads the routes after node B checked the socket's
    token but before B routed the user to itself: the socket must not stay open."""
    node_a, node_b = await app_client(), await app_client()
    admin = await new_admin(node_a)
    victim = await new_user(node_a, "Victim")
    ban = AdminBan(id=cid(), user_id=victim.id, reason="race")
    async with racing_socket(node_b, victim, lambda: admin.cmd(ban)) as late:
        await late.expect_close(4003, timeout=5)


async def test_a_role_change_racing_a_new_socket_closes_it_4001(app_client: AppClient) -> None:
    """The same window for admin.set_role: the socket would keep the old role."""
    node_a, node_b = await app_client(), await app_client()
    admin = await new_admin(node_a)
    promoted = await new_user(node_a, "Promoted")
    promote = AdminSetRole(id=cid(), user_id=promoted.id, role=Role.ADMIN)
    async with racing_socket(node_b, promoted, lambda: admin.cmd(promote)) as late:
        await late.expect_close(4001, timeout=5)
    again = await open_session(node_b, promoted.reg.access_token)  # same token: role read anew
    assert isinstance(await again.request(AdminUsers(id=cid())), Ok)


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


async def test_banning_a_host_ends_their_stream_at_once_on_every_node(
        app_client: AppClient) -> None:
    # A host grace far beyond the test: the stream must end because of the ban, not
    # because its host's sockets closed.
    node_a = await app_client(live_host_grace_s=600)
    node_b = await app_client(live_host_grace_s=600)
    admin, reporter = await new_admin(node_a), await new_user(node_a, "Reporter")
    host, other_host = await new_user(node_a, "Host"), await new_user(node_b, "Other host")
    viewer = await new_user(node_b, "Viewer")
    stream = (await go_live(host)).stream
    other = (await go_live(other_host)).stream
    await join(viewer, stream.id)
    await join(reporter, other.id)

    await admin.cmd(AdminBan(id=cid(), user_id=host.id, reason="cruelty"))
    ended = await next_of(viewer.sock, "live.ended", timeout=2.0)
    assert ended.stream_id == stream.id
    await host.sock.expect_close(4003, timeout=2.0)
    row = await pool_of(node_a).fetchrow(
        "SELECT status, ended_reason FROM live_streams WHERE id = $1", stream.id)
    assert (row["status"], row["ended_reason"]) == ("ended", "moderation")
    [entry] = await audit_rows(node_a, action="admin.ban")
    assert entry["data"] == {"changed": True, "streams_ended": [stream.id]}

    # A user banned through the queue (a rejected report) loses their stream the same way.
    await reporter.cmd(ReportsCreate(id=cid(), target=ReportTarget(
        kind=ReportTargetKind.USER, id=other_host.id), reason=ReportReason.HARASSMENT))
    items = (await admin.cmd(AdminModerationQueue(id=cid(), kind=ModerationKind.USER))).items
    [item] = [i for i in items if i.target_id == other_host.id]
    await admin.cmd(AdminModerationDecide(id=cid(), item_id=item.id,
                                          decision=ModerationDecision.REJECT))
    assert (await next_of(reporter.sock, "live.ended", timeout=2.0)).stream_id == other.id
    await other_host.sock.expect_close(4003, timeout=2.0)
    assert (await viewer.cmd(LiveList(id=cid()))).streams == []


async def test_a_banned_users_things_are_hidden_everywhere_until_unbanned(
        app_client: AppClient) -> None:
    node_a, node_b = await app_client(), await app_client()
    admin = await new_admin(node_a)
    owner = await new_user(node_a, "Owner")
    viewer = await new_user(node_b, "Viewer")  # another node: what it reads is the database
    pet = await owner.pet("Rex")
    mine = await viewer.pet("Tom")
    offered = await listing(owner, await owner.pet("Bella"))
    own_post = await post(owner, "Rex at the beach", location=HERE)
    viewers_post = await post(viewer, "Tom asleep")
    comment = (await owner.cmd(PostsComment(id=cid(), post_id=viewers_post.id,
                                            body="cute"))).comment
    await viewer.sock.expect("notification")  # post.comment
    stream = (await go_live(owner)).stream
    alert = (await owner.cmd(LostReport(id=cid(), pet_id=pet.id, description="Rex ran off",
                                        location=HERE, radius_m=1000))).alert

    async def seen() -> dict[str, bool]:
        """Each place another user meets the owner's things."""
        candidates = await viewer.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=50))
        listings = await viewer.cmd(AdoptionListings(id=cid()))
        near_listings = await viewer.cmd(AdoptionListings(id=cid(), location=HERE))
        one_listing = await viewer.sock.request(AdoptionListing(id=cid(),
                                                                listing_id=offered.id))
        feed = await viewer.cmd(PostsFeed(id=cid(), scope=FeedScope.RECENT))
        by_author = await viewer.cmd(PostsFeed(id=cid(), scope=FeedScope.AUTHOR,
                                               author_id=owner.id))
        nearby = await viewer.cmd(PostsFeed(id=cid(), scope=FeedScope.NEARBY, location=HERE))
        one_post = await viewer.sock.request(PostsGet(id=cid(), post_id=own_post.id))
        comments = await viewer.cmd(PostsComments(id=cid(), post_id=viewers_post.id))
        streams = await viewer.cmd(LiveList(id=cid()))
        joined = await viewer.sock.request(LiveJoin(id=cid(), stream_id=stream.id))
        alerts = await viewer.cmd(LostNearby(id=cid(), location=HERE, radius_m=1000))
        return {
            "pet in discovery": pet.id in {c.pet.id for c in candidates.candidates},
            "listing in search": offered.id in {x.id for x in listings.listings},
            "listing nearby": offered.id in {x.id for x in near_listings.listings},
            "listing by id": isinstance(one_listing, Ok),
            "post in feed": own_post.id in {p.id for p in feed.posts},
            "post in author feed": own_post.id in {p.id for p in by_author.posts},
            "post in nearby feed": own_post.id in {p.id for p in nearby.posts},
            "post by id": isinstance(one_post, Ok),
            "comment": comment.id in {c.id for c in comments.comments},
            "stream in list": stream.id in {s.id for s in streams.streams},
            # An ended stream one may see is conflict to join; a hidden one not_found.
            "stream by id": not (isinstance(joined, Error) and joined.code == "not_found"),
            "open lost alert": alert.id in {a.id for a in alerts.alerts},
        }

    before = await seen()
    assert all(before.values()), before
    await viewer.cmd(LiveLeave(id=cid(), stream_id=stream.id))

    await admin.cmd(AdminBan(id=cid(), user_id=owner.id, reason="scam"))
    await owner.sock.expect_close(4003, timeout=2.0)
    # Everything is hidden but the lost alert (a lost pet is still lost: public safety),
    # and the stream is over besides (the ban ended it).
    assert await seen() == {name: name == "open lost alert" for name in before}
    swipe = await viewer.error(Swipe(id=cid(), pet_id=mine.id, target_pet_id=pet.id,
                                     direction=SwipeDirection.LIKE))
    assert swipe.code == "not_found"
    # A sighting of the banned owner's pet is still taken (it reaches them when unbanned).
    await viewer.cmd(LostSightingCommand(id=cid(), alert_id=alert.id, location=HERE))

    await admin.cmd(AdminUnban(id=cid(), user_id=owner.id))
    after = await seen()
    assert after == {name: name != "stream in list" for name in before}  # ended, visible
