"""The moderation queue's content kinds, end to end over the socket: ``reports.create`` →
the queue (one item, its preview) → ``admin.moderation.decide`` → the effect others see →
the author's ``moderation.removed`` notification; a second decision is ``conflict``.

Posts, comments, listings and live streams; the stream's viewers are on two nodes."""

from __future__ import annotations

from typing import Any

from protocol.admin import (
    AdminModerationDecide,
    AdminModerationQueue,
    ModerationDecision,
    ModerationItem,
    ModerationKind,
    ModerationStatus,
)
from protocol.adoption import (
    AdoptionApplications,
    AdoptionListing,
    AdoptionListings,
    AdoptionUpdateListing,
    ApplicationStatus,
    ListingStatus,
)
from protocol.community import FeedScope, PostsComment, PostsComments, PostsFeed, PostsGet
from protocol.live import LiveJoin, LiveList
from protocol.safety import ReportReason, ReportsCreate, ReportTarget, ReportTargetKind
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.live.helpers import go_live, join, next_of
from tests.domain.social import add_upload, apply, listing, post
from tests.support.ws import ProtocolSocket

APPROVE, REJECT = ModerationDecision.APPROVE, ModerationDecision.REJECT
K = ReportTargetKind


async def report(user: User, kind: ReportTargetKind, target_id: str,
                 reason: ReportReason = ReportReason.SPAM) -> None:
    """A real report, as a user files it."""
    await user.cmd(ReportsCreate(id=cid(), target=ReportTarget(kind=kind, id=target_id),
                                 reason=reason))


async def item_of(admin: User, kind: ModerationKind, target_id: str) -> ModerationItem:
    """The one open item of the target (each target appears once)."""
    items = (await admin.cmd(AdminModerationQueue(id=cid(), kind=kind))).items
    found = [i for i in items if i.target_id == target_id]
    assert len(found) == 1, items
    item: ModerationItem = found[0]
    return item


async def decide(admin: User, item: ModerationItem, verdict: ModerationDecision,
                 reason: str | None = None) -> ModerationItem:
    decided: ModerationItem = (await admin.cmd(AdminModerationDecide(
        id=cid(), item_id=item.id, decision=verdict, reason=reason))).item
    assert decided.status == ModerationStatus.RESOLVED and decided.decision == verdict
    return decided


async def removal_note(user: User, sock: Any = None) -> Any:
    """The author's ``moderation.removed`` notification (the next message on the socket)."""
    event = await (sock or user.sock).expect("notification")
    assert event.notification.kind == "moderation.removed", event
    return event.notification


async def both_of(sock: ProtocolSocket, *types: str) -> dict[str, Any]:
    """One message of each wire type, in whatever order they arrive (others skipped)."""
    got: dict[str, Any] = {}
    while len(got) < len(types):
        message = sock.pending.pop(0) if sock.pending else await sock.receive()
        if message.wire_type() in types:
            got.setdefault(message.wire_type(), message)
    return got


async def test_a_rejected_post_is_gone_for_everyone_and_its_author_told(
        app_client: AppClient) -> None:
    node_a, node_b = await app_client(), await app_client()
    author = await new_user(node_a, "Author")
    reporter, admin = await new_user(node_b, "Reporter"), await new_admin(node_b)
    photo = await add_upload(node_a, author.id)
    bad = await post(author, "something nasty", photo_ids=[photo])
    fine = await post(author, "Rex at the beach")
    await report(reporter, K.POST, bad.id, ReportReason.NUDITY)
    await report(reporter, K.POST, fine.id)

    item = await item_of(admin, ModerationKind.POST, bad.id)
    assert (item.report_count, item.reasons) == (1, ["nudity"])
    assert item.preview["author_id"] == author.id and item.preview["body"] == "something nasty"
    assert item.preview["deleted"] is False
    [shown] = item.preview["photos"]  # the admin sees the photo, whatever its state
    assert (shown["id"], shown["status"]) == (photo, "pending") and shown["url"]

    decided = await decide(admin, item, REJECT, "no nudity here")
    assert decided.preview["deleted"] is True
    note = await removal_note(author)  # on the other node
    assert note.data == {"kind": "post", "target_id": bad.id, "item_id": item.id}
    assert note.title == "Your post was removed" and "no nudity here" in note.body

    for user in (reporter, author):  # not_found from then on, its author included
        assert (await user.error(PostsGet(id=cid(), post_id=bad.id))).code == "not_found"
    feed = await reporter.cmd(PostsFeed(id=cid(), scope=FeedScope.RECENT))
    assert [p.id for p in feed.posts] == [fine.id]
    again = await reporter.error(ReportsCreate(id=cid(), target=ReportTarget(kind=K.POST,
                                                                             id=bad.id),
                                               reason=ReportReason.SPAM))
    assert again.code == "not_found"
    twice = await admin.error(AdminModerationDecide(id=cid(), item_id=item.id,
                                                    decision=REJECT))
    assert twice.code == "conflict"

    # Approving keeps the post and tells nobody.
    await decide(admin, await item_of(admin, ModerationKind.POST, fine.id), APPROVE)
    assert (await reporter.cmd(PostsGet(id=cid(), post_id=fine.id))).post.body == \
        "Rex at the beach"
    await author.sock.expect_nothing()
    entries = await audit_rows(node_a, action="admin.moderation.decide")
    assert [(e["target_kind"], e["target_id"], e["data"]["decision"],
             e["data"].get("removed")) for e in entries] == [
        ("post", bad.id, "reject", True), ("post", fine.id, "approve", None)]


async def test_a_rejected_comment_leaves_the_post_and_its_count(
        app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    writer, commenter = await new_user(client, "Writer"), await new_user(client, "Commenter")
    reporter = await new_user(client, "Reporter")
    the_post = await post(writer)
    comment = (await commenter.cmd(PostsComment(id=cid(), post_id=the_post.id,
                                                body="go away"))).comment
    await writer.sock.expect("notification")  # post.comment
    await report(reporter, K.COMMENT, comment.id, ReportReason.HARASSMENT)

    item = await item_of(admin, ModerationKind.COMMENT, comment.id)
    assert item.preview["post_id"] == the_post.id and item.preview["body"] == "go away"
    assert item.preview["author_id"] == commenter.id
    await decide(admin, item, REJECT)
    note = await removal_note(commenter)
    assert note.data == {"kind": "comment", "target_id": comment.id, "item_id": item.id,
                         "post_id": the_post.id}
    assert "reported for harassment" in note.body

    comments = await reporter.cmd(PostsComments(id=cid(), post_id=the_post.id))
    assert comments.comments == []
    seen = (await reporter.cmd(PostsGet(id=cid(), post_id=the_post.id))).post
    assert seen.comment_count == 0  # the post stays, one comment fewer
    await writer.sock.expect_nothing()


async def test_a_rejected_listing_is_withdrawn_and_removed(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    lister, applicant = await new_user(client, "Lister"), await new_user(client, "Applicant")
    reporter = await new_user(client, "Reporter")
    offered = await listing(lister, title="Cheap puppies, cash only")
    application = await apply(applicant, offered.id)
    await lister.sock.expect("adoption.application")
    await lister.sock.expect("notification")
    await report(reporter, K.LISTING, offered.id, ReportReason.SCAM)

    item = await item_of(admin, ModerationKind.LISTING, offered.id)
    assert item.preview["title"] == "Cheap puppies, cash only"
    assert item.preview["lister_id"] == lister.id and item.preview["status"] == "available"
    decided = await decide(admin, item, REJECT)
    assert decided.preview["status"] == "withdrawn" and decided.preview["removed"] is True

    # The applicant learns their application is off, as when a lister withdraws...
    event = await applicant.sock.expect("adoption.decision")
    assert (event.application.id, event.application.status) == (application.id,
                                                                ApplicationStatus.REJECTED)
    assert (await applicant.sock.expect("notification")).notification.kind == \
        "adoption.decision"
    # ...and the lister why.
    note = await removal_note(lister)
    assert note.data == {"kind": "listing", "target_id": offered.id, "item_id": item.id}
    assert note.title == "Your adoption listing was removed"

    # Gone for everyone but the lister (who sees it withdrawn), applicants included.
    for user in (applicant, reporter):
        error = await user.error(AdoptionListing(id=cid(), listing_id=offered.id))
        assert error.code == "not_found"
    own = (await lister.cmd(AdoptionListing(id=cid(), listing_id=offered.id))).listing
    assert own.status == ListingStatus.WITHDRAWN
    assert (await reporter.cmd(AdoptionListings(id=cid()))).listings == []
    mine = (await applicant.cmd(AdoptionApplications(id=cid()))).applications
    assert [(a.id, a.status) for a in mine] == [(application.id, ApplicationStatus.REJECTED)]
    reopen = await lister.error(AdoptionUpdateListing(id=cid(), listing_id=offered.id,
                                                      title="Puppies"))
    assert reopen.code == "conflict"
    [entry] = await audit_rows(client, action="admin.moderation.decide")
    assert entry["data"]["removed"] is True and entry["data"]["applications_rejected"] == 1
    await applicant.sock.expect_nothing()


async def test_a_rejected_stream_ends_for_viewers_on_every_node(app_client: AppClient) -> None:
    # A long host grace: only the decision can end the stream within the test.
    node_a = await app_client(live_host_grace_s=600)
    node_b = await app_client(live_host_grace_s=600)
    host, near = await new_user(node_a, "Host"), await new_user(node_a, "Near")
    far, admin = await new_user(node_b, "Far"), await new_admin(node_b)
    stream = (await go_live(host, "Feeding time")).stream
    for viewer in (near, far):
        await join(viewer, stream.id)
    await report(far, K.LIVE, stream.id, ReportReason.ANIMAL_WELFARE)

    item = await item_of(admin, ModerationKind.LIVE, stream.id)
    assert item.preview["host_id"] == host.id and item.preview["title"] == "Feeding time"
    assert item.preview["status"] == "live"
    decided = await decide(admin, item, REJECT)
    assert decided.preview["status"] == "ended"
    assert decided.preview["ended_reason"] == "moderation"
    for user in (near, far):  # both nodes, within the default 5 s
        assert (await next_of(user.sock, "live.ended")).stream_id == stream.id
    # The host gets both (the durable notification and the room's end: either first).
    got = await both_of(host.sock, "live.ended", "notification")
    assert got["live.ended"].stream_id == stream.id
    assert got["notification"].notification.kind == "moderation.removed"
    assert got["notification"].notification.data == {"kind": "live", "target_id": stream.id,
                                                     "item_id": item.id}

    assert (await far.cmd(LiveList(id=cid()))).streams == []
    assert (await near.error(LiveJoin(id=cid(), stream_id=stream.id))).code == "conflict"
    reason = await pool_of(node_a).fetchval(
        "SELECT ended_reason FROM live_streams WHERE id = $1", stream.id)
    assert reason == "moderation"
    # Deciding again is conflict; a report of the ended stream opens a new item, and
    # rejecting that removes nothing more and tells nobody.
    twice = await admin.error(AdminModerationDecide(id=cid(), item_id=item.id,
                                                    decision=REJECT))
    assert twice.code == "conflict"
    await report(near, K.LIVE, stream.id)
    late = await decide(admin, await item_of(admin, ModerationKind.LIVE, stream.id), REJECT)
    assert late.id != item.id
    entries = await audit_rows(node_b, action="admin.moderation.decide")
    assert [e["data"]["removed"] for e in entries] == [True, False]
    await host.sock.expect_nothing()
