"""posts.like (exact counts, one notification per liker) and comments."""

from __future__ import annotations

import asyncio
import json

from protocol.community import (
    PostsComment,
    PostsComments,
    PostsDeleteComment,
    PostsGet,
    PostsLike,
)
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.social import UNKNOWN, ban, db, new_admin, post


async def like(user: User, post_id: str, on: bool = True) -> tuple[int, bool]:
    got = (await user.cmd(PostsLike(id=cid(), post_id=post_id, like=on))).post
    return got.like_count, got.liked_by_me


async def test_likes_are_idempotent_and_notify_the_author_once(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    mine = await post(alice, "my dog")
    assert await like(bob, mine.id) == (1, True)
    note = (await alice.sock.expect("notification")).notification
    assert (note.kind, note.title, note.body) == ("post.like", "Bob liked your post", "my dog")
    assert note.data == {"post_id": mine.id, "user_id": bob.id}
    assert await like(bob, mine.id) == (1, True)  # again: nothing changes
    assert await like(bob, mine.id, False) == (0, False)
    assert await like(bob, mine.id, False) == (0, False)
    assert await like(bob, mine.id) == (1, True)  # liked again after unliking: no new note
    assert await like(alice, mine.id) == (2, True)  # own post: counted, never notified
    await alice.sock.expect_nothing()
    seen = (await alice.cmd(PostsGet(id=cid(), post_id=mine.id))).post
    assert (seen.like_count, seen.liked_by_me) == (2, True)
    assert (await bob.error(PostsLike(id=cid(), post_id=UNKNOWN, like=True))).code == (
        "not_found")


async def test_like_counts_are_exact_when_many_like_at_once_on_two_nodes(
        app_client: AppClient) -> None:
    node1, node2 = await app_client(), await app_client()
    author = await new_user(node1, "Author")
    likers = [await new_user(node1 if i % 2 else node2, f"L{i}") for i in range(24)]
    hot = await post(author, "hot")
    # Everyone likes at once, each twice (two devices racing), from both nodes.
    second = [await u.connect() for u in likers]
    await asyncio.gather(*(u.cmd(PostsLike(id=cid(), post_id=hot.id, like=True))
                           for u in likers),
                         *(s.command(PostsLike(id=cid(), post_id=hot.id, like=True))
                           for s in second))
    got = (await author.cmd(PostsGet(id=cid(), post_id=hot.id))).post
    assert got.like_count == len(likers)
    kinds = [(await author.sock.expect("notification")).notification for _ in likers]
    assert sorted(n.data["user_id"] for n in kinds) == sorted(u.id for u in likers)
    await author.sock.expect_nothing()
    # Half unlike while the other half like again (a no-op): exact again.
    await asyncio.gather(*(u.cmd(PostsLike(id=cid(), post_id=hot.id, like=i % 2 == 0))
                           for i, u in enumerate(likers)))
    got = (await author.cmd(PostsGet(id=cid(), post_id=hot.id))).post
    assert got.like_count == len(likers) // 2
    pool = db(node1)
    assert await pool.fetchval("SELECT count(*) FROM post_likes WHERE active") == (
        len(likers) // 2)
    assert await pool.fetchval("SELECT sum(likes) FROM post_counters") == len(likers) // 2
    assert await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE kind = 'post.like'") == len(likers)


async def test_comments_oldest_first_with_counts_and_notifications(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    mine = await post(alice, "my dog")
    first = (await bob.cmd(PostsComment(id=cid(), post_id=mine.id, body="  cute  "))).comment
    assert first.body == "cute" and first.author.display_name == "Bob"
    note = (await alice.sock.expect("notification")).notification
    assert (note.kind, note.title, note.body) == ("post.comment", "Bob commented on your post",
                                                  "cute")
    assert note.data == {"post_id": mine.id, "comment_id": first.id, "user_id": bob.id}
    own = (await alice.cmd(PostsComment(id=cid(), post_id=mine.id, body="thanks"))).comment
    await alice.sock.expect_nothing()  # the author's own comment: no notification
    more = [(await bob.cmd(PostsComment(id=cid(), post_id=mine.id, body=f"c{i}"))).comment
            for i in range(3)]
    for _ in more:
        await alice.sock.expect("notification")
    page = await bob.cmd(PostsComments(id=cid(), post_id=mine.id, limit=2))
    rest = await bob.cmd(PostsComments(id=cid(), post_id=mine.id, limit=2,
                                       cursor=page.next_cursor))
    last = await bob.cmd(PostsComments(id=cid(), post_id=mine.id, limit=2,
                                       cursor=rest.next_cursor))
    ids = [c.id for c in page.comments + rest.comments + last.comments]
    assert ids == [first.id, own.id, *(c.id for c in more)] and last.next_cursor is None
    assert (await bob.cmd(PostsGet(id=cid(), post_id=mine.id))).post.comment_count == 5
    error = await bob.error(PostsComment(id=cid(), post_id=mine.id, body=" "))
    assert (error.code, error.message) == ("bad_request", "body: must not be blank")
    await bob.sock.send_raw(json.dumps({"type": "posts.comment", "id": "x",
                                        "post_id": mine.id, "body": "x" * 2001}))
    assert (await bob.sock.expect("error")).code == "too_large"
    for bad in (UNKNOWN, "nope"):
        assert (await bob.error(PostsComment(id=cid(), post_id=bad, body="x"))).code == (
            "not_found")
        assert (await bob.error(PostsComments(id=cid(), post_id=bad))).code == "not_found"


async def test_comment_is_idempotent_by_key(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = await post(alice)
    one = await bob.cmd(PostsComment(id=cid(), post_id=mine.id, body="hi",
                                     idempotency_key="k"))
    again = await bob.cmd(PostsComment(id=cid(), post_id=mine.id, body="hi",
                                       idempotency_key="k"))
    assert one == again
    await alice.sock.expect("notification")
    await alice.sock.expect_nothing()
    assert (await bob.cmd(PostsGet(id=cid(), post_id=mine.id))).post.comment_count == 1


async def test_who_may_delete_a_comment(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    admin = await new_admin(client)
    mine = await post(alice)

    async def comment(user: User, body: str) -> str:
        return str((await user.cmd(PostsComment(id=cid(), post_id=mine.id, body=body)))
                   .comment.id)

    by_bob = [await comment(bob, f"b{i}") for i in range(3)]
    by_carol = await comment(carol, "c")
    error = await carol.error(PostsDeleteComment(id=cid(), comment_id=by_bob[0]))
    assert error.code == "forbidden"
    await bob.cmd(PostsDeleteComment(id=cid(), comment_id=by_bob[0]))  # its author
    await alice.cmd(PostsDeleteComment(id=cid(), comment_id=by_bob[1]))  # the post's author
    await admin.cmd(PostsDeleteComment(id=cid(), comment_id=by_bob[2]))  # an admin
    for gone in by_bob:
        assert (await bob.error(PostsDeleteComment(id=cid(), comment_id=gone))).code == (
            "not_found")
    listed = await carol.cmd(PostsComments(id=cid(), post_id=mine.id))
    assert [c.id for c in listed.comments] == [by_carol]
    assert (await carol.cmd(PostsGet(id=cid(), post_id=mine.id))).post.comment_count == 1
    assert (await carol.error(PostsDeleteComment(id=cid(), comment_id=UNKNOWN))).code == (
        "not_found")


async def test_a_banned_users_comments_are_hidden_from_others(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    mine = await post(alice)
    await bob.cmd(PostsComment(id=cid(), post_id=mine.id, body="spam"))
    kept = (await carol.cmd(PostsComment(id=cid(), post_id=mine.id, body="nice"))).comment
    await ban(client, bob)
    listed = await alice.cmd(PostsComments(id=cid(), post_id=mine.id))
    assert [c.id for c in listed.comments] == [kept.id]
