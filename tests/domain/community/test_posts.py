"""posts.create / get / feed / delete through the socket (PROTOCOL §10.2)."""

from __future__ import annotations

import json

from protocol.community import (
    FeedScope,
    Post,
    PostsCreate,
    PostsDelete,
    PostsFeed,
    PostsGet,
    PostsLike,
)
from protocol.types import Location
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.social import (
    UNKNOWN,
    add_upload,
    ban,
    db,
    is_public,
    new_admin,
    post,
)


async def feed(user: User, scope: FeedScope = FeedScope.RECENT, **fields: object
               ) -> tuple[list[Post], str | None]:
    result = await user.cmd(PostsFeed(id=cid(), scope=scope, **fields))  # type: ignore[arg-type]
    return list(result.posts), result.next_cursor


async def test_create_get_and_recent_feed(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    first = await post(alice, "  first  ")
    assert first.body == "first" and first.author.id == alice.id
    assert first.author.display_name == "Alice" and first.author.role.value == "user"
    assert (first.like_count, first.comment_count, first.liked_by_me) == (0, 0, False)
    assert first.location is None and first.photo_ids == []
    second = await post(bob, "second")
    posts, cursor = await feed(bob)
    assert [p.id for p in posts] == [second.id, first.id] and cursor is None
    got = (await bob.cmd(PostsGet(id=cid(), post_id=first.id))).post
    assert got == first
    for bad in (UNKNOWN, "not-an-id"):
        error = await bob.error(PostsGet(id=cid(), post_id=bad))
        assert (error.code, error.message) == ("not_found", "post_id: no such post")


async def test_body_rules(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    error = await alice.error(PostsCreate(id=cid(), body="   "))
    assert (error.code, error.message) == ("bad_request", "body: must not be blank")
    await alice.sock.send_raw(json.dumps({"type": "posts.create", "id": "b1",
                                          "body": "x" * 5001}))
    error = await alice.sock.expect("error")
    assert error.code == "too_large" and error.message.startswith("body")
    assert len((await post(alice, "x" * 5000)).body) == 5000


async def test_location_is_exact_for_the_author_and_rounded_for_others(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    created = await post(alice, location=Location(lat=52.523456, lng=13.409876))
    assert created.location == Location(lat=52.523456, lng=13.409876)
    seen = (await bob.cmd(PostsGet(id=cid(), post_id=created.id))).post
    assert seen.location == Location(lat=52.52, lng=13.41)


async def test_photos_are_the_authors_own_uploads_and_become_public(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = await add_upload(client, alice.id)
    theirs = await add_upload(client, bob.id)
    rejected = await add_upload(client, alice.id, status="rejected")
    created = await post(alice, photo_ids=[mine])
    assert created.photo_ids == [mine] and await is_public(client, mine)
    for bad in (theirs, rejected, "nope"):
        error = await alice.error(PostsCreate(id=cid(), body="x", photo_ids=[mine, bad]))
        assert (error.code, error.message) == ("not_found", "photo_ids[1]: no such upload")
    error = await alice.error(PostsCreate(id=cid(), body="x", photo_ids=[mine, mine]))
    assert error.code == "bad_request"
    await alice.sock.send_raw(json.dumps({"type": "posts.create", "id": "p", "body": "x",
                                          "photo_ids": [mine] * 11}))
    assert (await alice.sock.expect("error")).code == "too_large"


async def test_create_is_idempotent_by_key(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    one = await post(alice, "hello", idempotency_key="k1")
    again = await post(alice, "hello", idempotency_key="k1")
    other = await post(alice, "hello", idempotency_key="k2")
    assert one == again and other.id != one.id
    assert await db(client).fetchval("SELECT count(*) FROM posts") == 2


async def test_recent_pages_neither_skip_nor_repeat_while_posts_are_added(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    before = [(await post(alice, f"old {i}")).id for i in range(23)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        fields: dict[str, object] = {"limit": 5}
        if cursor:
            fields["cursor"] = cursor
        posts, cursor = await feed(bob, **fields)
        seen += [p.id for p in posts]
        pages += 1
        await post(alice, f"new during page {pages}")  # arrives above the pages read
        if cursor is None:
            break
    assert seen == list(reversed(before)) and pages == 5


async def test_author_scope(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = [await post(alice, f"a{i}") for i in range(3)]
    await post(bob, "b")
    posts, _ = await feed(bob, FeedScope.AUTHOR, author_id=alice.id)
    assert [p.id for p in posts] == [p.id for p in reversed(mine)]
    page, cursor = await feed(alice, FeedScope.AUTHOR, author_id=alice.id, limit=2)
    rest, end = await feed(alice, FeedScope.AUTHOR, author_id=alice.id, limit=2,
                           cursor=cursor)
    assert [p.id for p in page + rest] == [p.id for p in reversed(mine)] and end is None
    for unknown in (UNKNOWN, "not-an-id"):  # an unknown author simply has no posts
        assert (await feed(bob, FeedScope.AUTHOR, author_id=unknown))[0] == []


async def test_feed_arguments_are_checked(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    for frame, fragment in (
        ({"scope": "nearby"}, "location: required with scope nearby"),
        ({"scope": "author"}, "author_id: required with scope author"),
        ({"scope": "recent", "cursor": "garbage"}, "cursor: not a cursor this server issued"),
        ({"scope": "nearby", "location": {"lat": 1, "lng": 1}, "radius_km": 501}, "radius_km"),
        ({"scope": "recent", "limit": 51}, "limit"),
        ({"scope": "sideways"}, "scope"),
    ):
        await alice.sock.send_raw(json.dumps({"type": "posts.feed", "id": "f", **frame}))
        error = await alice.sock.expect("error")
        assert error.code == "bad_request" and fragment in error.message, (frame, error)


async def test_delete_is_for_the_author_or_an_admin(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    admin = await new_admin(client)
    mine, other = await post(alice), await post(alice)
    error = await bob.error(PostsDelete(id=cid(), post_id=mine.id))
    assert error.code == "forbidden"
    await alice.cmd(PostsDelete(id=cid(), post_id=mine.id))
    await admin.cmd(PostsDelete(id=cid(), post_id=other.id))
    for gone in (mine, other):  # deleted things are not_found from then on, for everyone
        for user in (alice, bob, admin):
            assert (await user.error(PostsGet(id=cid(), post_id=gone.id))).code == "not_found"
        assert (await bob.error(PostsLike(id=cid(), post_id=gone.id, like=True))).code == (
            "not_found")
        assert (await alice.error(PostsDelete(id=cid(), post_id=gone.id))).code == "not_found"
    assert (await feed(bob))[0] == []
    assert (await bob.error(PostsDelete(id=cid(), post_id=UNKNOWN))).code == "not_found"


async def test_a_banned_authors_posts_are_hidden_from_others(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, admin = await new_user(client), await new_user(client), await new_admin(client)
    hidden = await post(alice, location=Location(lat=1.0, lng=1.0))
    shown = await post(bob)
    await ban(client, alice)
    posts, _ = await feed(bob)
    assert [p.id for p in posts] == [shown.id]
    assert (await feed(bob, FeedScope.AUTHOR, author_id=alice.id))[0] == []
    assert (await feed(bob, FeedScope.NEARBY, location=Location(lat=1.0, lng=1.0)))[0] == []
    assert (await bob.error(PostsGet(id=cid(), post_id=hidden.id))).code == "not_found"
    # An admin can still remove it.
    await admin.cmd(PostsDelete(id=cid(), post_id=hidden.id))
    await db(client).execute("UPDATE users SET banned_at = NULL WHERE id = $1", alice.id)
    assert [p.id for p in (await feed(bob))[0]] == [shown.id]


async def test_create_is_rate_limited_per_user(app_client: AppClient) -> None:
    client = await app_client(posts_create_per_hour=2)
    alice, bob = await new_user(client), await new_user(client)
    await post(alice, idempotency_key="a")
    await post(alice)
    error = await alice.error(PostsCreate(id=cid(), body="third", idempotency_key="c"))
    assert error.code == "rate_limited" and error.retry_after_s and error.retry_after_s > 0
    assert (await post(alice, idempotency_key="a")).body  # a recorded resend still answers
    await post(bob)  # per user
    assert await db(client).fetchval("SELECT count(*) FROM posts") == 3
