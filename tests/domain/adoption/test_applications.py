"""adoption.apply / decide / withdraw / applications, the status machine, the events,
and two accepts at once on two nodes."""

from __future__ import annotations

import asyncio

from protocol.adoption import (
    AdoptionApplications,
    AdoptionApply,
    AdoptionDecide,
    AdoptionListing,
    AdoptionListPet,
    AdoptionUpdateListing,
    AdoptionWithdraw,
    ApplicationDecision,
    ApplicationStatus,
    ListingStatus,
    ListingStatusChange,
)
from protocol.chat import ChatConversations, ChatSend
from protocol.session import Error, Ok
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.social import HERE, UNKNOWN, apply, db, listing
from tests.support.ws import open_session

ACCEPT, REJECT = ApplicationDecision.ACCEPT, ApplicationDecision.REJECT


async def decide(user: User, application_id: str, decision: ApplicationDecision,
                 **fields: object) -> object:
    return (await user.cmd(AdoptionDecide(id=cid(), application_id=application_id,  # type: ignore[arg-type]
                                          decision=decision, **fields))).application


async def drain_application(lister: User) -> None:
    await lister.sock.expect("adoption.application")
    await lister.sock.expect("notification")


async def listing_status(user: User, listing_id: str) -> ListingStatus:
    got = (await user.cmd(AdoptionListing(id=cid(), listing_id=listing_id))).listing
    return ListingStatus(got.status)


async def test_apply_tells_the_lister(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    made = await listing(alice, title="Rex needs a home")
    application = await apply(bob, made.id, "  We have a garden  ")
    assert (application.listing_id, application.applicant_id, application.message) == (
        made.id, bob.id, "We have a garden")
    assert application.status is ApplicationStatus.SUBMITTED
    assert application.conversation_id is None and application.decided_at is None
    event = await alice.sock.expect("adoption.application")
    assert event.application == application
    note = (await alice.sock.expect("notification")).notification
    assert (note.kind, note.title, note.body) == (
        "adoption.application", "New application for Rex needs a home", "We have a garden")
    assert note.data == {"listing_id": made.id, "application_id": application.id,
                         "applicant_id": bob.id}
    await bob.sock.expect_nothing()


async def test_apply_rules(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    made = await listing(alice)
    error = await alice.error(AdoptionApply(id=cid(), listing_id=made.id, message="me"))
    assert (error.code, error.message) == ("forbidden",
                                           "listing_id: you cannot apply to your own listing")
    first = await apply(bob, made.id, idempotency_key="k")
    assert await apply(bob, made.id, idempotency_key="k") == first  # a resend
    error = await bob.error(AdoptionApply(id=cid(), listing_id=made.id, message="again"))
    assert error.code == "conflict"
    error = await bob.error(AdoptionApply(id=cid(), listing_id=made.id, message="  "))
    assert (error.code, error.message) == ("bad_request", "message: must not be blank")
    for bad in (UNKNOWN, "nope"):
        error = await bob.error(AdoptionApply(id=cid(), listing_id=bad, message="x"))
        assert error.code == "not_found"
    await bob.cmd(AdoptionWithdraw(id=cid(), application_id=first.id))
    again = await apply(bob, made.id)  # after withdrawing, a new application is live
    assert again.id != first.id
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                          status=ListingStatusChange.WITHDRAWN))
    error = await bob.error(AdoptionApply(id=cid(), listing_id=made.id, message="x"))
    assert (error.code, error.message) == ("conflict", "listing_id: the listing is withdrawn")


async def test_accept_opens_a_conversation_and_tells_the_applicant(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client, "Alice"), await new_user(client, "Bob"),
                         await new_user(client, "Carol"))
    made = await listing(alice, title="Rex needs a home")
    mine = await apply(bob, made.id)
    other = await apply(carol, made.id)
    for _ in range(2):
        await drain_application(alice)
    # Only the lister decides: the applicant sees it (forbidden), a stranger does not.
    assert (await bob.error(AdoptionDecide(id=cid(), application_id=mine.id,
                                           decision=ACCEPT))).code == "forbidden"
    assert (await carol.error(AdoptionDecide(id=cid(), application_id=mine.id,
                                             decision=ACCEPT))).code == "not_found"
    accepted = await decide(alice, mine.id, ACCEPT, note="Welcome!")
    assert accepted.status is ApplicationStatus.ACCEPTED  # type: ignore[attr-defined]
    assert accepted.note == "Welcome!" and accepted.decided_at  # type: ignore[attr-defined]
    conversation_id = accepted.conversation_id  # type: ignore[attr-defined]
    assert conversation_id
    event = await bob.sock.expect("adoption.decision")
    assert event.application == accepted
    note = (await bob.sock.expect("notification")).notification
    assert (note.kind, note.title, note.body) == (
        "adoption.decision", "Your adoption application was accepted", "Rex needs a home")
    assert note.data == {"listing_id": made.id, "application_id": mine.id,
                         "status": "accepted", "conversation_id": conversation_id}
    assert await listing_status(alice, made.id) is ListingStatus.PENDING
    # chat.* serves the conversation; chat.conversations says what it is about.
    sent = await bob.cmd(ChatSend(id=cid(), conversation_id=conversation_id,
                                  client_msg_id="m1", body="When can we meet?"))
    assert (await alice.sock.expect("chat.message")).message == sent.message
    convs = (await alice.cmd(ChatConversations(id=cid()))).conversations
    assert [(c.id, c.match_id, c.listing_id, c.closed) for c in convs] == [
        (conversation_id, None, made.id, False)]
    assert sorted(convs[0].member_ids) == sorted([alice.id, bob.id])
    # While pending, no second acceptance; rejecting is still possible.
    error = await alice.error(AdoptionDecide(id=cid(), application_id=other.id,
                                             decision=ACCEPT))
    assert error.code == "conflict"
    error = await alice.error(AdoptionDecide(id=cid(), application_id=mine.id,
                                             decision=REJECT))
    assert (error.code, error.message) == ("conflict",
                                           "application_id: the application is accepted")
    rejected = await decide(alice, other.id, REJECT)
    assert rejected.status is ApplicationStatus.REJECTED  # type: ignore[attr-defined]
    assert (await carol.sock.expect("adoption.decision")).application == rejected
    note = (await carol.sock.expect("notification")).notification
    assert note.title == "Your adoption application was not accepted"
    assert "conversation_id" not in note.data


async def test_two_accepts_at_once_on_two_nodes_exactly_one_wins(
        app_client: AppClient) -> None:
    node1, node2 = await app_client(), await app_client()
    lister = await new_user(node1, "Lister")
    # The lister's second device, on the other node.
    lister2 = User(client=node2, reg=lister.reg,
                   sock=await open_session(node2, lister.reg.access_token))
    applicants = [await new_user(node1 if i % 2 else node2, f"A{i}") for i in range(2)]
    for round_ in range(6):
        made = await listing(lister, await lister.pet(f"P{round_}"))
        apps = [await apply(a, made.id) for a in applicants]
        replies = await asyncio.gather(
            lister.sock.request(AdoptionDecide(id=cid(), application_id=apps[0].id,
                                               decision=ACCEPT)),
            lister2.sock.request(AdoptionDecide(id=cid(), application_id=apps[1].id,
                                                decision=ACCEPT)))
        won = [r for r in replies if isinstance(r, Ok)]
        lost = [r for r in replies if isinstance(r, Error)]
        assert len(won) == 1 and len(lost) == 1, replies
        assert lost[0].code == "conflict"
        # The same application accepted twice at once: one wins too.
        other = await apply(applicants[0], (await listing(lister, await lister.pet(
            f"Q{round_}"))).id)
        replies = await asyncio.gather(
            lister.sock.request(AdoptionDecide(id=cid(), application_id=other.id,
                                               decision=ACCEPT)),
            lister2.sock.request(AdoptionDecide(id=cid(), application_id=other.id,
                                                decision=ACCEPT)))
        assert sorted(type(r).__name__ for r in replies) == ["Error", "Ok"], replies
    pool = db(node1)
    assert await pool.fetchval(
        "SELECT count(*) FROM adoption_applications WHERE status = 'accepted'") == 12
    assert await pool.fetchval(
        "SELECT count(*) FROM adoption_listings WHERE status = 'pending'") == 12
    # One conversation per acceptance, none for the losers.
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 12


async def test_withdrawing_an_accepted_application_reopens_the_listing(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    made = await listing(alice)
    mine = await apply(bob, made.id)
    await drain_application(alice)
    await decide(alice, mine.id, ACCEPT)
    assert (await alice.error(AdoptionWithdraw(id=cid(), application_id=mine.id))).code == (
        "forbidden")
    assert (await carol.error(AdoptionWithdraw(id=cid(), application_id=mine.id))).code == (
        "not_found")
    gone = (await bob.cmd(AdoptionWithdraw(id=cid(), application_id=mine.id))).application
    assert gone.status is ApplicationStatus.WITHDRAWN
    event = await alice.sock.expect("adoption.application")  # the lister hears of it
    assert event.application == gone
    await alice.sock.expect_nothing()
    assert await listing_status(carol, made.id) is ListingStatus.AVAILABLE
    error = await bob.error(AdoptionWithdraw(id=cid(), application_id=mine.id))
    assert (error.code, error.message) == ("conflict",
                                           "application_id: the application is withdrawn")
    assert (await bob.error(AdoptionWithdraw(id=cid(), application_id=UNKNOWN))).code == (
        "not_found")


async def test_adopted_rejects_the_rest_and_tells_each_applicant(
        app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    applicants = [await new_user(client, f"A{i}") for i in range(4)]
    made = await listing(alice)
    apps = [await apply(a, made.id) for a in applicants]
    for _ in apps:
        await drain_application(alice)
    await decide(alice, apps[0].id, REJECT)  # already decided: stays as it is
    await decide(alice, apps[1].id, ACCEPT)
    for a in applicants[:2]:
        await a.sock.expect("adoption.decision")
        await a.sock.expect("notification")
    done = (await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                  status=ListingStatusChange.ADOPTED))).listing
    assert done.status is ListingStatus.ADOPTED
    for applicant, application in zip(applicants[2:], apps[2:], strict=True):
        event = await applicant.sock.expect("adoption.decision")
        assert (event.application.id, event.application.status) == (
            application.id, ApplicationStatus.REJECTED)
        assert (await applicant.sock.expect("notification")).notification.kind == (
            "adoption.decision")
    for applicant in applicants[:2]:
        await applicant.sock.expect_nothing()
    statuses = {a.id: a.status for a in (await alice.cmd(AdoptionApplications(
        id=cid(), listing_id=made.id))).applications}
    assert statuses == {apps[0].id: "rejected", apps[1].id: "accepted",
                        apps[2].id: "rejected", apps[3].id: "rejected"}
    # Adopted is final; applicants still see the listing, others do not.
    error = await alice.error(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                    status=ListingStatusChange.AVAILABLE))
    assert error.code == "conflict"
    assert await listing_status(applicants[3], made.id) is ListingStatus.ADOPTED
    stranger = await new_user(client)
    assert (await stranger.error(AdoptionListing(id=cid(), listing_id=made.id))).code == (
        "not_found")


async def test_withdrawing_or_reopening_a_listing_rejects_live_applications(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    made = await listing(alice)
    b, c = await apply(bob, made.id), await apply(carol, made.id)
    await decide(alice, b.id, ACCEPT)
    await bob.sock.expect("adoption.decision")
    await bob.sock.expect("notification")
    # Reopen: the accepted application is rejected, the submitted one stays.
    reopened = (await alice.cmd(AdoptionUpdateListing(
        id=cid(), listing_id=made.id, status=ListingStatusChange.AVAILABLE))).listing
    assert reopened.status is ListingStatus.AVAILABLE
    event = await bob.sock.expect("adoption.decision")
    assert (event.application.id, event.application.status) == (b.id, "rejected")
    await bob.sock.expect("notification")
    await carol.sock.expect_nothing()
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                          status=ListingStatusChange.WITHDRAWN))
    event = await carol.sock.expect("adoption.decision")
    assert (event.application.id, event.application.status) == (c.id, "rejected")


async def test_applications_lists(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    one, two = await listing(alice, await alice.pet("A")), await listing(alice,
                                                                          await alice.pet("B"))
    mine = [await apply(bob, one.id), await apply(bob, two.id)]
    theirs = await apply(carol, one.id)
    got = await bob.cmd(AdoptionApplications(id=cid()))
    assert [a.id for a in got.applications] == [mine[1].id, mine[0].id]
    page = await alice.cmd(AdoptionApplications(id=cid(), listing_id=one.id, limit=1))
    rest = await alice.cmd(AdoptionApplications(id=cid(), listing_id=one.id, limit=1,
                                                cursor=page.next_cursor))
    assert [a.id for a in page.applications + rest.applications] == [theirs.id, mine[0].id]
    assert rest.next_cursor is None
    error = await bob.error(AdoptionApplications(id=cid(), listing_id=one.id))
    assert (error.code, error.message) == (
        "forbidden", "listing_id: only the lister sees its applications")
    assert (await bob.error(AdoptionApplications(id=cid(), listing_id=UNKNOWN))).code == (
        "not_found")
    assert (await alice.cmd(AdoptionApplications(id=cid()))).applications == []


async def test_apply_and_list_pet_are_rate_limited(app_client: AppClient) -> None:
    client = await app_client(adoption_applications_per_day=1, adoption_listings_per_day=2)
    alice, bob = await new_user(client), await new_user(client)
    one, two = await listing(alice, await alice.pet("A")), await listing(alice,
                                                                          await alice.pet("B"))
    error = await alice.error(AdoptionApply(id=cid(), listing_id=UNKNOWN, message="x"))
    assert error.code == "not_found"
    error = await alice.error(AdoptionListPet(id=cid(), pet_id=(await alice.pet("C")).id,
                                              title="t", description="d", location=HERE))
    assert error.code == "rate_limited" and error.retry_after_s
    await apply(bob, one.id)
    error = await bob.error(AdoptionApply(id=cid(), listing_id=two.id, message="x"))
    assert error.code == "rate_limited" and error.retry_after_s
