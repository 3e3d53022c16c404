"""reports.create: every target kind, visibility (else not_found), one open report per
reporter and target, idempotency, the rate limit, and the stored row."""

from __future__ import annotations

import json

from protocol.adoption import AdoptionUpdateListing, ListingStatusChange
from protocol.chat import ChatDelete, ChatSend
from protocol.community import PostsComment, PostsDelete
from protocol.safety import (
    Report,
    ReportReason,
    ReportsCreate,
    ReportStatus,
    ReportTarget,
    ReportTargetKind,
)
from tests.domain.conftest import AppClient, User, cid, make_match, new_user
from tests.domain.social import UNKNOWN, ban, block, db, listing, post

K = ReportTargetKind


def create(kind: ReportTargetKind, target_id: str, reason: ReportReason = ReportReason.SPAM,
           **fields: object) -> ReportsCreate:
    return ReportsCreate(id=cid(), target=ReportTarget(kind=kind, id=target_id),  # type: ignore[arg-type]
                         reason=reason, **fields)


async def report(user: User, kind: ReportTargetKind, target_id: str, **fields: object
                 ) -> Report:
    got: Report = (await user.cmd(create(kind, target_id, **fields))).report  # type: ignore[arg-type]
    return got


async def test_every_kind_of_visible_target_can_be_reported(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    match = await make_match(alice, await alice.pet("A"), bob, await bob.pet("B"))
    message = (await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                        client_msg_id="m", body="buy my stuff"))).message
    a_post = await post(alice)
    comment = (await alice.cmd(PostsComment(id=cid(), post_id=a_post.id, body="c"))).comment
    a_listing = await listing(alice, await alice.pet("L"))
    targets = {K.USER: alice.id, K.POST: a_post.id, K.COMMENT: comment.id,
               K.MESSAGE: message.id, K.LISTING: a_listing.id}
    for kind, target_id in targets.items():
        made = await report(bob, kind, target_id, reason=ReportReason.SCAM, note="fraud")
        assert (made.status, made.target, made.reason, made.note) == (
            ReportStatus.OPEN, ReportTarget(kind=kind, id=target_id), ReportReason.SCAM,
            "fraud")
    rows = await db(client).fetch(
        "SELECT target_kind, target_id::text AS t, target_owner_id::text AS owner, status "
        "FROM reports WHERE reporter_id = $1", bob.id)
    assert {(r["target_kind"], r["t"], r["owner"], r["status"]) for r in rows} == {
        (k.value, t, alice.id, "open") for k, t in targets.items()}
    await alice.sock.expect("chat.message")
    await alice.sock.expect_nothing(0.1)  # the reported user is told nothing


async def test_live_streams_can_be_reported_unless_hidden(app_client: AppClient) -> None:
    from protocol.live import LiveStart

    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    stream = (await alice.cmd(LiveStart(id=cid(), title="Rex live"))).stream
    made = await report(bob, K.LIVE, stream.id, reason=ReportReason.ANIMAL_WELFARE)
    assert made.status is ReportStatus.OPEN
    owner = await db(client).fetchval(
        "SELECT target_owner_id::text FROM reports WHERE id = $1", made.id)
    assert owner == alice.id
    await block(alice, carol)  # the host blocked carol: the stream is hidden from her
    error = await carol.error(create(K.LIVE, stream.id))
    assert (error.code, error.message) == ("not_found", "target.id: no such live stream")


async def test_one_open_report_per_reporter_and_target(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    a_post = await post(alice)
    first = await report(bob, K.POST, a_post.id, reason=ReportReason.SPAM)
    again = await report(bob, K.POST, a_post.id, reason=ReportReason.NUDITY, note="other")
    assert again == first  # the same open report, unchanged
    keyed = await report(bob, K.POST, a_post.id, idempotency_key="k")
    assert keyed == first and await report(bob, K.POST, a_post.id, idempotency_key="k") == first
    other = await report(carol, K.POST, a_post.id)  # another reporter: another report
    assert other.id != first.id
    await db(client).execute("UPDATE reports SET status = 'resolved', resolved_at = now() "
                             "WHERE id = $1", first.id)
    fresh = await report(bob, K.POST, a_post.id)  # once resolved, a new one opens
    assert fresh.id != first.id and fresh.status is ReportStatus.OPEN
    assert await db(client).fetchval("SELECT count(*) FROM reports") == 3


async def test_targets_the_reporter_cannot_see_are_not_found(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol, dave = (await new_user(client), await new_user(client),
                               await new_user(client), await new_user(client))
    match = await make_match(alice, await alice.pet("A"), bob, await bob.pet("B"))
    message = (await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                        client_msg_id="m", body="hi"))).message
    deleted_msg = (await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                            client_msg_id="m2", body="oops"))).message
    await alice.cmd(ChatDelete(id=cid(), message_id=deleted_msg.id))
    gone = await post(alice, "gone")
    await alice.cmd(PostsDelete(id=cid(), post_id=gone.id))
    withdrawn = await listing(alice, await alice.pet("W"))
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=withdrawn.id,
                                          status=ListingStatusChange.WITHDRAWN))
    d_post = await post(dave, "dave")
    d_comment = (await dave.cmd(PostsComment(id=cid(), post_id=d_post.id, body="d"))).comment
    await block(dave, carol)
    hidden = [
        (K.MESSAGE, message.id, "message"),  # another pair's conversation
        (K.POST, gone.id, "post"),
        (K.LISTING, withdrawn.id, "listing"),  # not available, never applied
        (K.POST, d_post.id, "post"),  # across a block
        (K.COMMENT, d_comment.id, "comment"),
        (K.USER, UNKNOWN, "user"),
        (K.POST, "not-an-id", "post"),
        (K.LIVE, UNKNOWN, "live stream"),
    ]
    for kind, target_id, name in hidden:
        error = await carol.error(create(kind, target_id))
        assert (error.code, error.message) == ("not_found", f"target.id: no such {name}"), kind
    error = await bob.error(create(K.MESSAGE, deleted_msg.id))  # bob is a member: deleted
    assert (error.code, error.message) == ("not_found", "target.id: no such message")
    await report(bob, K.MESSAGE, message.id)  # ... while a live one of his conversation is fine
    # A user stays reportable across a block (block and report a harasser together).
    await report(carol, K.USER, dave.id, reason=ReportReason.HARASSMENT)
    # A banned user's post is hidden like any other.
    await ban(client, alice)
    banned_post = await db(client).fetchval(
        "INSERT INTO posts (author_id, body) VALUES ($1, 'x') RETURNING id::text", alice.id)
    assert (await carol.error(create(K.POST, banned_post))).code == "not_found"


async def test_own_things_and_oneself_are_bad_requests(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    mine = await post(alice)
    error = await alice.error(create(K.USER, alice.id))
    assert (error.code, error.message) == ("bad_request", "target: you cannot report yourself")
    error = await alice.error(create(K.POST, mine.id))
    assert (error.code, error.message) == ("bad_request",
                                           "target: you cannot report your own post")


async def test_bounds_and_the_rate_limit(app_client: AppClient) -> None:
    client = await app_client(reports_create_per_hour=2)
    alice, bob = await new_user(client), await new_user(client)
    posts = [await post(alice, f"p{i}") for i in range(3)]
    for frame, code, fragment in (
        ({"reason": "boring"}, "bad_request", "reason"),
        ({"target": {"kind": "pet", "id": posts[0].id}}, "bad_request", "target.kind"),
        ({"note": "x" * 1001}, "too_large", "note"),
    ):
        await bob.sock.send_raw(json.dumps({"type": "reports.create", "id": "r",
                                            "target": {"kind": "post", "id": posts[0].id},
                                            "reason": "spam", **frame}))
        error = await bob.sock.expect("error")
        assert error.code == code and fragment in error.message, error
    first = await report(bob, K.POST, posts[0].id)
    await report(bob, K.POST, posts[1].id)
    error = await bob.error(create(K.POST, posts[2].id))
    assert error.code == "rate_limited" and error.retry_after_s
    assert await report(bob, K.POST, posts[0].id) == first  # an open one is still returned
    await report(alice, K.USER, bob.id)  # per reporter
