"""The moderation queue: pending uploads and reported targets once each, filters and
cursors; admin.moderation.decide in one transaction, a second decision ``conflict``.

Reports are inserted as rows (``reports.create`` is issue #12's, built in parallel): the
queue is fed by the database whoever writes the report.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from protocol.admin import (
    AdminModerationDecide,
    AdminModerationQueue,
    ModerationDecision,
    ModerationKind,
    ModerationStatus,
)
from protocol.adoption import AdoptionListing
from protocol.chat import ChatHistory, ChatSend
from protocol.community import PostsGet
from protocol.lost import LostNearby, LostReport, LostSightingCommand, LostSightings
from protocol.objects import Species
from protocol.pets import PetsCreate, PetsMine
from protocol.session import Error, Ok
from protocol.types import Location
from server.domain.uploads.moderation import ImageInfo, Moderator, Verdict
from tests.domain.admin.conftest import audit_rows, new_admin, pool_of
from tests.domain.conftest import AppClient, User, cid, make_match, new_user
from tests.domain.social import listing, post
from tests.uploads import images

APPROVE, REJECT = ModerationDecision.APPROVE, ModerationDecision.REJECT


async def upload_photo(client: TestClient[Any, Any], user: User) -> str:
    """A real upload through POST /api/v1/uploads: processed, stored, pending."""
    form = aiohttp.FormData()
    form.add_field("purpose", "pet_photo")
    form.add_field("file", images.png(), filename="p.png", content_type="image/png")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.reg.bearer)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["upload"]["status"] == "pending"
    upload_id: str = body["upload"]["id"]
    return upload_id


async def report(client: TestClient[Any, Any], reporter: User, kind: str, target_id: str,
                 reason: str, owner_id: str | None = None) -> None:
    await pool_of(client).execute(
        """INSERT INTO reports (reporter_id, target_kind, target_id, target_owner_id, reason)
           VALUES ($1, $2, $3, $4, $5)""",
        reporter.id, kind, target_id, owner_id, reason)


async def open_items(admin: User, kind: ModerationKind | None = None) -> list[Any]:
    result = await admin.cmd(AdminModerationQueue(id=cid(), kind=kind))
    return list(result.items)


async def test_an_upload_is_queued_once_and_approving_it_tells_the_uploader(
        app_client: AppClient) -> None:
    client = await app_client()
    admin, owner = await new_admin(client), await new_user(client)
    upload_id = await upload_photo(client, owner)
    [item] = await open_items(admin)
    assert (item.kind, item.target_id, item.status) == (ModerationKind.UPLOAD, upload_id,
                                                        ModerationStatus.OPEN)
    assert item.report_count == 0 and item.reasons == []
    assert item.preview["owner_id"] == owner.id and item.preview["status"] == "pending"
    resp = await client.get(item.preview["url"])  # the admin sees the image
    assert resp.status == 200 and (await resp.read())[:4] == b"\x89PNG"

    decided = (await admin.cmd(AdminModerationDecide(id=cid(), item_id=item.id,
                                                     decision=APPROVE))).item
    assert decided.status == ModerationStatus.RESOLVED and decided.decision == APPROVE
    assert decided.decided_by == admin.id and decided.resolved_at is not None
    event = await owner.sock.expect("upload.moderated")
    assert (event.upload_id, event.status) == (upload_id, "approved") and event.seq > 0
    status = await pool_of(client).fetchval("SELECT status FROM uploads WHERE id = $1",
                                            upload_id)
    assert status == "approved"

    again = await admin.error(AdminModerationDecide(id=cid(), item_id=item.id,
                                                    decision=REJECT))
    assert again.code == "conflict"
    assert await open_items(admin) == []
    resolved = await admin.cmd(AdminModerationQueue(id=cid(),
                                                    status=ModerationStatus.RESOLVED))
    assert [i.id for i in resolved.items] == [item.id]
    [entry] = await audit_rows(client, action="admin.moderation.decide")
    assert (entry["target_kind"], entry["target_id"]) == ("upload", upload_id)
    assert entry["data"]["item_id"] == item.id and entry["data"]["decision"] == "approve"


async def test_a_rejected_photo_leaves_every_pet_listing_post_alert_and_sighting(
        app_client: AppClient) -> None:
    client = await app_client()
    admin, owner = await new_admin(client), await new_user(client)
    other = await new_user(client, "Other")
    bad, good = await upload_photo(client, owner), await upload_photo(client, owner)
    pet = (await owner.cmd(PetsCreate(id=cid(), name="Rex", species=Species.DOG,
                                      photo_ids=[bad, good]))).pet
    other_pet = (await owner.cmd(PetsCreate(id=cid(), name="Tom", species=Species.CAT,
                                            photo_ids=[bad]))).pet
    alert = (await owner.cmd(LostReport(id=cid(), pet_id=pet.id, description="lost",
                                        location=Location(lat=52.5, lng=13.4), radius_m=1000,
                                        photo_ids=[good, bad]))).alert
    others_alert = (await other.cmd(LostReport(id=cid(), description="lost too",
                                               location=Location(lat=52.5, lng=13.4),
                                               radius_m=1000))).alert
    await owner.cmd(LostSightingCommand(id=cid(), alert_id=others_alert.id,
                                        location=Location(lat=52.5, lng=13.4),
                                        photo_ids=[bad]))
    await other.sock.expect("lost.sighting")
    await other.sock.expect("notification")
    a_post = await post(owner, "Rex and Tom", photo_ids=[bad, good])
    a_listing = await listing(owner, other_pet, photo_ids=[good, bad])
    item = next(i for i in await open_items(admin, ModerationKind.UPLOAD)
                if i.target_id == bad)
    decided = await admin.cmd(AdminModerationDecide(id=cid(), item_id=item.id,
                                                    decision=REJECT, reason="not a pet"))
    assert decided.item.decision_reason == "not a pet"
    event = await owner.sock.expect("upload.moderated")
    assert (event.upload_id, event.status) == (bad, "rejected")

    # Gone wherever it was, as others and the owner see it.
    pets = {p.id: p.photo_ids for p in (await owner.cmd(PetsMine(id=cid()))).pets}
    assert pets == {pet.id: [good], other_pet.id: []}
    assert (await other.cmd(PostsGet(id=cid(), post_id=a_post.id))).post.photo_ids == [good]
    seen = (await other.cmd(AdoptionListing(id=cid(), listing_id=a_listing.id))).listing
    assert seen.photo_ids == [good] and seen.pet.photo_ids == []
    nearby = await other.cmd(LostNearby(id=cid(), location=Location(lat=52.5, lng=13.4),
                                        radius_m=100))
    assert {a.id: a.photo_ids for a in nearby.alerts}[alert.id] == [good]
    [sighting] = (await other.cmd(LostSightings(id=cid(), alert_id=others_alert.id))).sightings
    assert sighting.photo_ids == []
    [entry] = await audit_rows(client, action="admin.moderation.decide")
    assert entry["data"]["detached_from"] == {"pets": 2, "lost_alerts": 1, "lost_sightings": 1,
                                              "posts": 1, "listings": 1}
    # The other photo is still waiting.
    assert [i.target_id for i in await open_items(admin)] == [good]


async def test_reports_of_one_user_are_one_item_and_rejecting_bans(
        app_client: AppClient) -> None:
    client = await app_client()
    admin, target = await new_admin(client), await new_user(client, "Troll")
    reporters = [await new_user(client) for _ in range(3)]
    for reporter, reason in zip(reporters, ("spam", "harassment", "spam"), strict=True):
        await report(client, reporter, "user", target.id, reason, target.id)
    [item] = await open_items(admin, ModerationKind.USER)
    assert item.report_count == 3 and item.reasons == ["spam", "harassment"]
    assert item.preview["display_name"] == "Troll" and item.preview["banned"] is False

    decided = (await admin.cmd(AdminModerationDecide(id=cid(), item_id=item.id,
                                                     decision=REJECT))).item
    assert decided.preview["banned"] is True
    await target.sock.expect_close(4003, timeout=2.0)
    pool = pool_of(client)
    row = await pool.fetchrow("SELECT banned_at, ban_reason FROM users WHERE id = $1",
                              target.id)
    assert row["banned_at"] is not None
    assert row["ban_reason"] == "reported for spam, harassment"
    assert await pool.fetchval("SELECT count(*) FROM reports WHERE status = 'open'") == 0
    # A new report after the decision opens a new item.
    await report(client, reporters[0], "user", target.id, "scam", target.id)
    [fresh] = await open_items(admin)
    assert fresh.id != item.id and fresh.report_count == 1 and fresh.reasons == ["scam"]


async def test_an_admin_cannot_ban_themself_through_the_queue(app_client: AppClient) -> None:
    client = await app_client()
    admin, reporter = await new_admin(client), await new_user(client)
    await report(client, reporter, "user", admin.id, "other", admin.id)
    [item] = await open_items(admin)
    error = await admin.error(AdminModerationDecide(id=cid(), item_id=item.id,
                                                    decision=REJECT))
    assert error.code == "bad_request"
    # Nothing happened: the item is still open, no audit entry.
    assert [i.id for i in await open_items(admin)] == [item.id]
    assert await audit_rows(client, action="admin.moderation.decide") == []


async def test_a_rejected_message_is_emptied_and_its_author_told(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    author, partner = await new_user(client, "Author"), await new_user(client, "Partner")
    match = await make_match(author, await author.pet(), partner, await partner.pet())
    sent = (await author.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                      client_msg_id="m1", body="buy cheap stuff"))).message
    kept = (await author.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                      client_msg_id="m2", body="hello"))).message
    for user in (author, partner):
        for _ in range(2):
            await user.sock.expect("chat.message")
    await report(client, partner, "message", sent.id, "spam", author.id)
    await report(client, partner, "message", kept.id, "other", author.id)
    items = {i.target_id: i for i in await open_items(admin, ModerationKind.MESSAGE)}
    assert items[sent.id].preview["body"] == "buy cheap stuff"
    assert items[sent.id].preview["sender_id"] == author.id

    await admin.cmd(AdminModerationDecide(id=cid(), item_id=items[sent.id].id,
                                          decision=REJECT))
    for user in (author, partner):  # every member's clients learn of it, durably
        event = await user.sock.expect("chat.message")
        assert event.message.id == sent.id and event.message.body == ""
        assert event.message.deleted_at is not None
    note = await author.sock.expect("notification")
    assert note.notification.kind == "moderation.removed"
    assert note.notification.data["target_id"] == sent.id
    assert "reported for spam" in note.notification.body
    await partner.sock.expect_nothing()

    kept_item = await admin.cmd(AdminModerationDecide(id=cid(), item_id=items[kept.id].id,
                                                      decision=APPROVE))
    assert kept_item.item.preview["body"] == "hello"
    history = await partner.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id,
                                            limit=10))
    assert [(m.id, m.body, m.deleted_at is not None) for m in history.messages] == [
        (kept.id, "hello", False), (sent.id, "", True)]
    await author.sock.expect_nothing()


async def test_filters_and_cursor_pages(app_client: AppClient) -> None:
    client = await app_client()
    admin, reporter = await new_admin(client), await new_user(client)
    targets = [await new_user(client) for _ in range(5)]
    for t in targets:
        await report(client, reporter, "user", t.id, "spam", t.id)
    upload_id = await upload_photo(client, reporter)

    seen: list[str] = []
    cursor = None
    while True:
        page = await admin.cmd(AdminModerationQueue(id=cid(), kind=ModerationKind.USER,
                                                    limit=2, cursor=cursor))
        seen += [i.target_id for i in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == [t.id for t in targets]  # open: oldest first, each once
    everything = [i.target_id for i in await open_items(admin)]
    assert everything == [*seen, upload_id]
    assert [i.target_id for i in await open_items(admin, ModerationKind.UPLOAD)] == [upload_id]
    assert await open_items(admin, ModerationKind.MESSAGE) == []

    for t in targets[:3]:
        item = next(i for i in await open_items(admin, ModerationKind.USER)
                    if i.target_id == t.id)
        await admin.cmd(AdminModerationDecide(id=cid(), item_id=item.id, decision=APPROVE))
    resolved: list[str] = []
    cursor = None
    while True:
        page = await admin.cmd(AdminModerationQueue(id=cid(), status=ModerationStatus.RESOLVED,
                                                    limit=2, cursor=cursor))
        resolved += [i.target_id for i in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert resolved == [t.id for t in reversed(targets[:3])]  # most recently resolved first
    unknown = await admin.error(AdminModerationDecide(
        id=cid(), item_id="00000000-0000-4000-8000-000000000000", decision=APPROVE))
    assert unknown.code == "not_found"


async def test_two_admins_deciding_at_once_on_two_nodes_one_wins(app_client: AppClient) -> None:
    node_a, node_b = await app_client(), await app_client()
    first, second = await new_admin(node_a, "A"), await new_admin(node_b, "B")
    owner = await new_user(node_a)
    await upload_photo(node_a, owner)
    [item] = await open_items(first)
    replies = await asyncio.gather(
        first.sock.request(AdminModerationDecide(id=cid(), item_id=item.id, decision=APPROVE)),
        second.sock.request(AdminModerationDecide(id=cid(), item_id=item.id, decision=REJECT)))
    assert sorted(type(r).__name__ for r in replies) == ["Error", "Ok"]
    error = next(r for r in replies if isinstance(r, Error))
    assert error.code == "conflict"
    winner = next(r for r in replies if isinstance(r, Ok))
    assert winner is not None
    assert len(await audit_rows(node_a, action="admin.moderation.decide")) == 1
    event = await owner.sock.expect("upload.moderated")
    await owner.sock.expect_nothing()
    status = await pool_of(node_a).fetchval("SELECT status FROM uploads")
    assert event.status == status


class Approves(Moderator):
    async def check(self, image: ImageInfo) -> Verdict:
        return Verdict(status="approved")


async def test_an_automatic_decision_resolves_the_item(app_client: AppClient) -> None:
    client = await app_client(moderator=Approves())
    admin, owner = await new_admin(client), await new_user(client)
    form = aiohttp.FormData()
    form.add_field("purpose", "pet_photo")
    form.add_field("file", images.png(), filename="p.png", content_type="image/png")
    resp = await client.post("/api/v1/uploads", data=form, headers=owner.reg.bearer)
    assert resp.status == 201
    assert await open_items(admin) == []
    [item] = (await admin.cmd(AdminModerationQueue(id=cid(),
                                                   status=ModerationStatus.RESOLVED))).items
    assert item.decision == APPROVE and item.decided_by is None
