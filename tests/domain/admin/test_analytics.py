"""admin.analytics: one entry per UTC day (zeros included), counts from the real tables,
at most 92 days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from protocol.admin import AdminAnalytics
from protocol.chat import ChatSend
from protocol.lost import LostReport
from protocol.types import Location
from tests.domain.admin.conftest import new_admin, pool_of
from tests.domain.conftest import AppClient, cid, make_match, new_user


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
