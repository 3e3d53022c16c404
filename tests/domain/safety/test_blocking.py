"""users.block / unblock / blocked, and a block applied in every area that exists:
matches and chat, discovery and swipes, presence, pets, posts, comments, listings and
applications — both ways, and the blocked user is told nothing."""

from __future__ import annotations

import asyncio

from protocol.adoption import (
    AdoptionApplications,
    AdoptionApply,
    AdoptionDecide,
    AdoptionListing,
    AdoptionListings,
    ApplicationDecision,
)
from protocol.chat import ChatHistory, ChatSend, ChatTypingCommand
from protocol.community import (
    FeedScope,
    PostsComment,
    PostsComments,
    PostsDeleteComment,
    PostsFeed,
    PostsGet,
    PostsLike,
)
from protocol.matching import DiscoveryCandidates, MatchesList, Swipe, SwipeDirection
from protocol.pets import PetsUpdate
from protocol.presence import PresenceQuery
from protocol.safety import UsersBlock, UsersBlocked, UsersUnblock
from tests.domain.conftest import AppClient, cid, make_match, new_user, wait_online
from tests.domain.social import HERE, UNKNOWN, apply, block, db, listing, post


async def test_block_unblock_and_the_blocked_list(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client, "Alice"), await new_user(client, "Bob"),
                         await new_user(client, "Carol"))
    await block(alice, bob)
    await block(alice, bob)  # repeating is a no-op
    await block(alice, carol)
    await block(carol, alice)  # carol's own block of alice: never in alice's list
    page = await alice.cmd(UsersBlocked(id=cid(), limit=1))
    rest = await alice.cmd(UsersBlocked(id=cid(), limit=1, cursor=page.next_cursor))
    assert [(u.id, u.display_name) for u in page.users + rest.users] == [
        (carol.id, "Carol"), (bob.id, "Bob")]
    assert rest.next_cursor is None
    assert [u.id for u in (await carol.cmd(UsersBlocked(id=cid()))).users] == [alice.id]
    assert (await bob.cmd(UsersBlocked(id=cid()))).users == []
    error = await alice.error(UsersBlock(id=cid(), user_id=alice.id))
    assert (error.code, error.message) == ("bad_request", "user_id: you cannot block yourself")
    for bad in (UNKNOWN, "nope"):
        error = await alice.error(UsersBlock(id=cid(), user_id=bad))
        assert (error.code, error.message) == ("not_found", "user_id: no such user")
    await alice.cmd(UsersUnblock(id=cid(), user_id=bob.id))
    await alice.cmd(UsersUnblock(id=cid(), user_id=bob.id))  # no-op
    await alice.cmd(UsersUnblock(id=cid(), user_id="nope"))  # no-op
    await alice.cmd(UsersUnblock(id=cid(), user_id=carol.id))  # carol's block of alice stays
    assert (await alice.cmd(UsersBlocked(id=cid()))).users == []
    assert await db(client).fetchval("SELECT count(*) FROM user_blocks") == 1
    for user in (bob, carol):  # the blocked are told nothing
        await user.sock.expect_nothing(0.1)


async def test_a_block_ends_the_match_and_chat_is_forbidden_both_ways(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    match = await make_match(alice, await alice.pet("A"), bob, await bob.pet("B"))
    second = await make_match(alice, await alice.pet("A2"), bob, await bob.pet("B2"))
    before = await bob.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                    client_msg_id="m1", body="hello"))
    for user in (alice, bob):
        await user.sock.expect("chat.message")
    await block(bob, alice)
    closed = set()
    for user in (alice, bob):  # exactly as matches.unmatch: conversation.closed to both
        for _ in range(2):
            closed.add((user.id, (await user.sock.expect("conversation.closed"))
                        .conversation_id))
        await user.sock.expect_nothing(0.1)
    assert closed == {(u.id, m.conversation_id) for u in (alice, bob) for m in (match, second)}
    for user in (alice, bob):
        assert (await user.cmd(MatchesList(id=cid()))).matches == []
        history = await user.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id))
        assert [m.id for m in history.messages] == [before.message.id]  # still readable
        for command in (ChatSend(id=cid(), conversation_id=match.conversation_id,
                                 client_msg_id=cid(), body="hi?"),
                        ChatTypingCommand(id=cid(), conversation_id=match.conversation_id)):
            error = await user.error(command)
            assert error.code == "forbidden", (user, error)
    # A resend of the message sent before the block still gets its original answer.
    again = await bob.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                   client_msg_id="m1", body="hello"))
    assert again.message == before.message
    # Unblocking does not bring the match back (unmatch is final for the pair).
    await bob.cmd(UsersUnblock(id=cid(), user_id=alice.id))
    assert (await alice.cmd(MatchesList(id=cid()))).matches == []
    error = await alice.error(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                       client_msg_id=cid(), body="hi?"))
    assert error.code == "conflict"


async def test_discovery_swipes_and_pets_across_a_block(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    a_pet, b_pet, c_pet = await alice.pet("A"), await bob.pet("B"), await carol.pet("C")
    await block(bob, alice)
    for me, mine, theirs in ((alice, a_pet, b_pet), (bob, b_pet, a_pet)):
        found = await me.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id))
        assert [c.pet.id for c in found.candidates] == [c_pet.id], me
        error = await me.error(Swipe(id=cid(), pet_id=mine.id, target_pet_id=theirs.id,
                                     direction=SwipeDirection.LIKE))
        assert (error.code, error.message) == ("not_found", "target_pet_id: no such pet")
        error = await me.error(PetsUpdate(id=cid(), pet_id=theirs.id, name="x"))
        assert (error.code, error.message) == ("not_found", "pet_id: no such pet")
    error = await carol.error(PetsUpdate(id=cid(), pet_id=a_pet.id, name="x"))
    assert error.code == "forbidden"  # no block: visible, not carol's


async def test_a_block_racing_the_swipe_that_completes_a_match(app_client: AppClient) -> None:
    """Block and mutual like at once, on two nodes: whichever wins, no live match is left
    between the two users."""
    node1, node2 = await app_client(), await app_client()
    alice, bob = await new_user(node1), await new_user(node2)
    for i in range(8):
        a_pet, b_pet = await alice.pet(f"A{i}"), await bob.pet(f"B{i}")
        await alice.cmd(Swipe(id=cid(), pet_id=a_pet.id, target_pet_id=b_pet.id,
                              direction=SwipeDirection.LIKE))
        await asyncio.gather(
            bob.sock.request(Swipe(id=cid(), pet_id=b_pet.id, target_pet_id=a_pet.id,
                                   direction=SwipeDirection.LIKE)),
            alice.cmd(UsersBlock(id=cid(), user_id=bob.id)))
        assert await db(node1).fetchval(
            "SELECT count(*) FROM matches WHERE unmatched_at IS NULL") == 0, i
        await alice.cmd(UsersUnblock(id=cid(), user_id=bob.id))


async def test_presence_between_blocked_users(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    await make_match(alice, await alice.pet(), bob, await bob.pet())
    # A block row while the match is still live (the moment inside a block's
    # transaction): presence already treats them as strangers.
    await db(client).execute("INSERT INTO user_blocks (blocker_id, blocked_id) "
                             "VALUES ($1, $2)", alice.id, bob.id)
    for me, other in ((alice, bob), (bob, alice)):
        got = await me.cmd(PresenceQuery(id=cid(), user_ids=[other.id]))
        assert got.presence[0].online is False
    await bob.sock.close()
    await wait_online(client, bob.id, False)
    back = await bob.connect()
    await alice.sock.expect_nothing(0.3)  # no presence event either way
    await alice.sock.close()
    await wait_online(client, alice.id, False)
    await back.expect_nothing(0.3)


async def test_posts_and_comments_are_hidden_both_ways(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    a_post = await post(alice, "alice", location=HERE)
    b_post = await post(bob, "bob", location=HERE)
    c_post = await post(carol, "carol")
    a_comment = (await alice.cmd(PostsComment(id=cid(), post_id=c_post.id, body="a"))).comment
    b_comment = (await bob.cmd(PostsComment(id=cid(), post_id=c_post.id, body="b"))).comment
    on_alices = (await bob.cmd(PostsComment(id=cid(), post_id=a_post.id, body="rude")))
    await alice.sock.expect("notification")
    await carol.sock.expect("notification")
    await carol.sock.expect("notification")
    await block(alice, bob)
    for me, theirs, their_comment, mine in ((alice, b_post, b_comment, a_post),
                                            (bob, a_post, a_comment, b_post)):
        for scope, extra in ((FeedScope.RECENT, {}), (FeedScope.NEARBY, {"location": HERE}),
                             (FeedScope.AUTHOR, {"author_id": theirs.author.id})):
            got = await me.cmd(PostsFeed(id=cid(), scope=scope, **extra))  # type: ignore[arg-type]
            assert theirs.id not in [p.id for p in got.posts], (me, scope)
        assert mine.id in [p.id for p in (await me.cmd(PostsFeed(
            id=cid(), scope=FeedScope.RECENT))).posts]
        for command in (PostsGet(id=cid(), post_id=theirs.id),
                        PostsLike(id=cid(), post_id=theirs.id, like=True),
                        PostsComment(id=cid(), post_id=theirs.id, body="x"),
                        PostsComments(id=cid(), post_id=theirs.id)):
            assert (await me.error(command)).code == "not_found", command
        listed = await me.cmd(PostsComments(id=cid(), post_id=c_post.id))
        assert their_comment.id not in [c.id for c in listed.comments]
    listed = await carol.cmd(PostsComments(id=cid(), post_id=c_post.id))
    assert {c.id for c in listed.comments} == {a_comment.id, b_comment.id}  # others see all
    # The blocked user's comment on alice's post is hidden from alice, and she may still
    # delete it (it is on her post).
    await alice.cmd(PostsDeleteComment(id=cid(), comment_id=on_alices.comment.id))
    assert (await carol.cmd(PostsComments(id=cid(), post_id=a_post.id))).comments == []
    await alice.cmd(UsersUnblock(id=cid(), user_id=bob.id))
    got = await alice.cmd(PostsFeed(id=cid(), scope=FeedScope.RECENT))
    assert b_post.id in [p.id for p in got.posts]
    for user in (bob,):
        await user.sock.expect_nothing(0.1)


async def test_listings_and_applications_across_a_block(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    a_listing = await listing(alice, await alice.pet("A"))
    b_listing = await listing(bob, await bob.pet("B"))
    pending = await apply(bob, a_listing.id)  # before the block
    await alice.sock.expect("adoption.application")
    await alice.sock.expect("notification")
    await block(alice, bob)
    for me, theirs in ((alice, b_listing), (bob, a_listing)):
        for search in (AdoptionListings(id=cid()), AdoptionListings(id=cid(), location=HERE)):
            got = await me.cmd(search)
            assert theirs.id not in [x.id for x in got.listings]
        assert (await me.error(AdoptionListing(id=cid(), listing_id=theirs.id))).code == (
            "not_found")
        error = await me.error(AdoptionApply(id=cid(), listing_id=theirs.id, message="x"))
        assert error.code == "not_found"
    # The lister no longer sees the blocked applicant's application, nor decides on it.
    got = await alice.cmd(AdoptionApplications(id=cid(), listing_id=a_listing.id))
    assert got.applications == []
    error = await alice.error(AdoptionDecide(id=cid(), application_id=pending.id,
                                             decision=ApplicationDecision.ACCEPT))
    assert error.code == "not_found"
    # The applicant still sees their own application.
    mine = await bob.cmd(AdoptionApplications(id=cid()))
    assert [a.id for a in mine.applications] == [pending.id]
    got = await carol.cmd(AdoptionListings(id=cid()))
    assert {x.id for x in got.listings} == {a_listing.id, b_listing.id}
    for user in (bob,):
        await user.sock.expect_nothing(0.1)

