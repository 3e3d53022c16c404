"""admin.analytics: one entry per UTC day (zeros included), counts from the real tables,
at most 92 days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from protocol.admin import AdminAnalytics
from protocol.adoption import (
    AdoptionDecide,
    AdoptionUpdateListing,
    ApplicationDecision,
    ListingStatusChange,
)
from protocol.chat import ChatSend
from protocol.community import PostsComment
from protocol.lost import LostReport
from protocol.types import Location
from server.domain.admin.analytics import COMMUNITY_SQL
from tests.domain.admin.conftest import new_admin, pool_of
from tests.domain.conftest import AppClient, cid, make_match, new_user
from tests.domain.social import apply, listing, post


async def test_days_without_anything_are_zeros(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    days = (await admin.cmd(AdminAnalytics(id=cid(), from_=date(2020, 2, 27),
                                           to=date(2020, 3, 2)))).days
    assert [d.date for d in days] == [date(2020, 2, 27), date(2020, 2, 28), date(2020, 2, 29),
                                      date(2020, 3, 1), date(2020, 3, 2)]
    assert all((d.active_users, d.new_users, d.messages, d.matches, d.lost_alerts, d.uploads,
                d.posts, d.adoptions) == (0,) * 8 for d in days)


async def test_counts_come_from_the_real_tables(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    for n in range(3):
        await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                 client_msg_id=f"m{n}", body="hi"))
    await bob.cmd(LostReport(id=cid(), description="lost", radius_m=500,
                             location=Location(lat=52.5, lng=13.4)))
    pool = pool_of(client)
    for status, key in (("pending", "'uploads/a/image.png'"), ("awaiting_upload", "NULL")):
        await pool.execute(  # a finished upload counts, one still being uploaded does not
            f"""INSERT INTO uploads (owner_id, purpose, status, flow, content_type, size,
                                     received_bytes, object_key, expires_at)
                VALUES ($1, 'pet_photo', $2, 'direct', 'image/png', 10, 10, {key},
                        now() + interval '1 hour')""", alice.id, status)
    # Yesterday: one older account and its login (moved back in time as rows).
    old = await new_user(client, "Old")
    await pool.execute("UPDATE users SET created_at = created_at - interval '1 day' "
                       "WHERE id = $1", old.id)
    await pool.execute("UPDATE sessions SET created_at = created_at - interval '1 day' "
                       "WHERE user_id = $1", old.id)
    await pool.execute("UPDATE refresh_tokens SET created_at = created_at - interval '1 day' "
                       "WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
                       old.id)

    today = datetime.now(UTC).date()
    days = (await admin.cmd(AdminAnalytics(id=cid(), from_=today - timedelta(days=2),
                                           to=today))).days
    before, yesterday, now = days
    assert (before.active_users, before.new_users) == (0, 0)
    assert (yesterday.date, yesterday.active_users, yesterday.new_users) == (
        today - timedelta(days=1), 1, 1)
    assert now.date == today
    assert now.new_users == 3          # admin, alice, bob
    assert now.active_users == 3       # their registrations (sessions), swipes, messages
    assert (now.messages, now.matches, now.lost_alerts, now.uploads) == (3, 1, 1, 1)
    assert (now.posts, now.adoptions) == (0, 0)


async def test_posts_adoptions_and_community_activity(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    writer, lister = await new_user(client, "Writer"), await new_user(client, "Lister")
    adopter, other = await new_user(client, "Adopter"), await new_user(client, "Other")
    pool = pool_of(client)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)

    async def counts() -> list[tuple[int, int, int]]:
        days = (await admin.cmd(AdminAnalytics(id=cid(), from_=yesterday, to=today))).days
        return [(d.posts, d.adoptions, d.active_users) for d in days]

    # The accounts were made today (registrations count as activity): move them back, so
    # that today's active users are exactly those who did something community-like.
    for table in ("users", "sessions"):
        column = "id" if table == "users" else "user_id"
        await pool.execute(f"UPDATE {table} SET created_at = created_at - interval '2 days' "
                           f"WHERE {column} = ANY($1::uuid[])",
                           [u.id for u in (admin, writer, lister, adopter, other)])
    await pool.execute("UPDATE refresh_tokens SET created_at = created_at - interval '2 days'")
    assert await counts() == [(0, 0, 0), (0, 0, 0)]

    first = await post(writer, "one")
    await post(writer, "two")
    old = await post(writer, "from yesterday")
    await pool.execute("UPDATE posts SET created_at = created_at - interval '1 day' "
                       "WHERE id = $1", old.id)
    await other.cmd(PostsComment(id=cid(), post_id=first.id, body="nice"))
    assert await counts() == [(1, 0, 1), (2, 0, 2)]  # writer (yesterday too), other

    # An adoption is a listing marked adopted (an accepted application is not yet one).
    pet = await lister.pet("Rex")
    await lister.pet("Spare")  # pets are not activity (the lister is active by listing)
    offered = await listing(lister, pet)
    application = await apply(adopter, offered.id)
    await lister.cmd(AdoptionDecide(id=cid(), application_id=application.id,
                                    decision=ApplicationDecision.ACCEPT))
    assert await counts() == [(1, 0, 1), (2, 0, 4)]
    await lister.cmd(AdoptionUpdateListing(id=cid(), listing_id=offered.id,
                                           status=ListingStatusChange.ADOPTED))
    adopted_at = await pool.fetchval("SELECT adopted_at FROM adoption_listings WHERE id = $1",
                                     offered.id)
    assert adopted_at is not None
    assert await counts() == [(1, 0, 1), (2, 1, 4)]


async def test_ranges_are_checked(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    start = date(2026, 1, 1)
    ok = await admin.cmd(AdminAnalytics(id=cid(), from_=start, to=start + timedelta(days=91)))
    assert len(ok.days) == 92
    too_long = await admin.error(AdminAnalytics(id=cid(), from_=start,
                                                to=start + timedelta(days=92)))
    assert too_long.code == "bad_request" and "92" in too_long.message
    backwards = await admin.error(AdminAnalytics(id=cid(), from_=start,
                                                 to=start - timedelta(days=1)))
    assert backwards.code == "bad_request"
    one = await admin.cmd(AdminAnalytics(id=cid(), from_=start, to=start))
    assert [d.date for d in one.days] == [start]
    await admin.sock.send_raw('{"type": "admin.analytics", "id": "a", "from": "2026-13-01", '
                              '"to": "2026-12-01"}')
    reply = await admin.sock.receive()
    assert getattr(reply, "code", None) == "bad_request"


async def test_community_counts_read_their_time_indexes(app_client: AppClient) -> None:
    """A year of posts and adoptions, a week asked: the plan reads the BRIN index of
    posts.created_at and the partial index of adoption_listings.adopted_at."""
    client = await app_client()
    author = await new_user(client, "Prolific")
    pet = await author.pet("Rex")
    pool = pool_of(client)
    await pool.execute(  # in time order, as a live table fills
        """INSERT INTO posts (author_id, body, created_at)
           SELECT $1, 'post ' || g, now() - interval '365 days' + g * interval '5 minutes'
           FROM generate_series(1, 100000) AS g""", author.id)
    await pool.execute(
        """INSERT INTO adoption_listings (lister_id, pet_id, title, description, lat, lng,
                                          status, adopted_at)
           SELECT $1, $2, 'Rex', 'calm', 52.5, 13.4, 'adopted',
                  now() - interval '365 days' + g * interval '10 minutes'
           FROM generate_series(1, 50000) AS g""", author.id, pet.id)
    await pool.execute("ANALYZE posts")
    await pool.execute("ANALYZE adoption_listings")
    today = datetime.now(UTC).date()
    first = today - timedelta(days=200)
    async with pool.acquire() as conn:
        plan = json.dumps(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {COMMUNITY_SQL}",
                                              first, first + timedelta(days=6)))
    assert "posts_created_brin" in plan, plan
    assert "adoption_listings_adopted" in plan, plan
    admin = await new_admin(client)
    days = (await admin.cmd(AdminAnalytics(id=cid(), from_=first,
                                           to=first + timedelta(days=6)))).days
    assert [d.posts for d in days] == [288] * 7          # one every 5 minutes
    assert [d.adoptions for d in days] == [144] * 7      # one every 10 minutes

