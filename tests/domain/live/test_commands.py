"""live.* through the real WebSocket: start, join, chat, leave, end, list, and every rule."""

from __future__ import annotations

import asyncio

from protocol.live import (
    LiveChatCommand,
    LiveEnd,
    LiveJoin,
    LiveLeave,
    LiveList,
    LiveReact,
    LiveStart,
)
from protocol.objects import MediaKind, MediaRole, ReactionKind, StreamStatus
from tests.conftest import AppClient
from tests.domain.conftest import cid, make_match, new_user
from tests.domain.live.helpers import go_live, join, live_of, next_of, none_of, say, sql
from tests.support.waiting import until


async def test_go_live_join_chat_leave_end(app_client: AppClient) -> None:
    client = await app_client()
    host, viewer = await new_user(client, "Ana"), await new_user(client, "Ben")
    pet = await host.pet("Rex")
    started = await go_live(host, "Rex at the beach", pet_id=pet.id)
    stream = started.stream
    assert stream.status == StreamStatus.LIVE and stream.host.id == host.id
    assert stream.host.display_name == "Ana" and stream.pet_id == pet.id
    assert stream.viewer_count == 0 and stream.media.kind == MediaKind.P2P
    assert stream.media.max_viewers == 8
    assert started.publish.kind == MediaKind.P2P and started.publish.role == MediaRole.HOST
    assert started.publish.host_id == host.id and started.publish.token is None

    joined = await join(viewer, stream.id)
    assert joined.stream.id == stream.id and joined.stream.viewer_count == 1
    assert joined.recent_chat == []
    assert joined.view.role == MediaRole.VIEWER and joined.view.host_id == host.id

    sent = await say(viewer, stream.id, "  so cute  ")
    assert sent.message.body == "so cute" and sent.message.sender.id == viewer.id
    assert sent.message.sender.display_name == "Ben"
    for sock in (host.sock, viewer.sock):  # the host and every viewer, the sender too
        event = await next_of(sock, "live.chat")
        assert event.stream_id == stream.id and event.message == sent.message
    await say(host, stream.id, "thanks!")
    for sock in (host.sock, viewer.sock):
        assert (await next_of(sock, "live.chat")).message.body == "thanks!"

    # A late viewer gets the recent chat, oldest first, from Redis.
    late = await new_user(client, "Cleo")
    again = await join(late, stream.id)
    assert [m.body for m in again.recent_chat] == ["so cute", "thanks!"]
    assert again.stream.viewer_count == 2

    # Leaving: no more room events for that socket; repeating is fine.
    await late.cmd(LiveLeave(id=cid(), stream_id=stream.id))
    await late.cmd(LiveLeave(id=cid(), stream_id=stream.id))
    await say(viewer, stream.id, "after the leave")
    await next_of(viewer.sock, "live.chat")
    await none_of(late.sock, "live.chat")

    ended = await host.cmd(LiveEnd(id=cid(), stream_id=stream.id))
    assert ended.stream.status == StreamStatus.ENDED and ended.stream.ended_at is not None
    for sock in (host.sock, viewer.sock):
        assert (await next_of(sock, "live.ended")).stream_id == stream.id
    await none_of(late.sock, "live.ended")
    # Repeating the end is a no-op; the room is gone.
    assert (await host.cmd(LiveEnd(id=cid(), stream_id=stream.id))).stream.status == "ended"
    err = await viewer.error(LiveChatCommand(id=cid(), stream_id=stream.id, body="hello?"))
    assert err.code == "forbidden"  # no longer a member
    err = await host.error(LiveChatCommand(id=cid(), stream_id=stream.id, body="hello?"))
    assert err.code == "conflict"
    err = await late.error(LiveJoin(id=cid(), stream_id=stream.id))
    assert err.code == "conflict"
    assert (await viewer.cmd(LiveList(id=cid()))).streams == []


async def test_one_live_stream_per_host_even_from_two_nodes(app_client: AppClient) -> None:
    a, b = await app_client(), await app_client()
    host = await new_user(a)
    other_device = await host.connect()
    replies = await asyncio.gather(
        host.sock.request(LiveStart(id=cid(), title="one")),
        other_device.request(LiveStart(id=cid(), title="two")),
    )
    codes = sorted(getattr(r, "code", "ok") for r in replies)
    assert codes == ["conflict", "ok"]
    del b
    err = await host.error(LiveStart(id=cid(), title="three"))
    assert err.code == "conflict"


async def test_start_is_idempotent_rate_limited_and_validated(app_client: AppClient) -> None:
    client = await app_client(live_start_per_hour=2)
    host, other = await new_user(client), await new_user(client)
    first = await host.cmd(LiveStart(id=cid(), title="live", idempotency_key="k1"))
    again = await host.cmd(LiveStart(id=cid(), title="live", idempotency_key="k1"))
    assert again.stream.id == first.stream.id  # the same stream, nothing new
    await host.cmd(LiveEnd(id=cid(), stream_id=first.stream.id))
    second = await go_live(host, "again")
    await host.cmd(LiveEnd(id=cid(), stream_id=second.stream.id))
    err = await host.error(LiveStart(id=cid(), title="third"))
    assert err.code == "rate_limited" and err.retry_after_s and err.retry_after_s > 0
    err = await other.error(LiveStart(id=cid(), title="   "))
    assert err.code == "bad_request" and err.message.startswith("title")
    err = await other.error(LiveStart(id=cid(), title="x" * 121))
    assert err.code == "too_large"
    foreign_pet = await host.pet("Rex")
    err = await other.error(LiveStart(id=cid(), title="not mine", pet_id=foreign_pet.id))
    assert err.code == "not_found"
    err = await other.error(LiveStart(id=cid(), title="bad", pet_id="nope"))
    assert err.code == "not_found"


async def test_unknown_and_foreign_ids_and_member_rules(app_client: AppClient) -> None:
    client = await app_client()
    host, viewer, stranger = [await new_user(client) for _ in range(3)]
    stream = (await go_live(host)).stream
    for bad in ("nope", "00000000-0000-0000-0000-000000000000"):
        for command in (LiveJoin(id=cid(), stream_id=bad),
                        LiveChatCommand(id=cid(), stream_id=bad, body="hi"),
                        LiveReact(id=cid(), stream_id=bad, kind=ReactionKind.HEART),
                        LiveEnd(id=cid(), stream_id=bad)):
            assert (await viewer.error(command)).code == "not_found"
    # Visible but not joined: forbidden; not the host: forbidden to end.
    err = await stranger.error(LiveChatCommand(id=cid(), stream_id=stream.id, body="hi"))
    assert err.code == "forbidden"
    err = await stranger.error(LiveReact(id=cid(), stream_id=stream.id, kind=ReactionKind.WOW))
    assert err.code == "forbidden"
    await join(viewer, stream.id)
    err = await viewer.error(LiveEnd(id=cid(), stream_id=stream.id))
    assert err.code == "forbidden"
    # Membership is per socket: the viewer's other device has not joined.
    laptop = await viewer.connect()
    reply = await laptop.request(LiveChatCommand(id=cid(), stream_id=stream.id, body="hi"))
    assert getattr(reply, "code", None) == "forbidden"
    err = await viewer.error(LiveChatCommand(id=cid(), stream_id=stream.id, body=" "))
    assert err.code == "bad_request"
    err = await viewer.error(LiveChatCommand(id=cid(), stream_id=stream.id, body="x" * 501))
    assert err.code == "too_large"


async def test_admin_can_end_any_stream(app_client: AppClient) -> None:
    client = await app_client()
    host, viewer, admin = [await new_user(client) for _ in range(3)]
    await sql(client, "UPDATE users SET role = 'admin' WHERE id = $1", admin.id)
    admin_sock = await admin.connect()  # a new socket carries the new role
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    ended = await admin_sock.command(LiveEnd(id=cid(), stream_id=stream.id))
    assert ended.stream.status == StreamStatus.ENDED
    assert (await next_of(viewer.sock, "live.ended")).stream_id == stream.id
    assert (await next_of(host.sock, "live.ended")).stream_id == stream.id


async def test_chat_and_reactions_are_rate_limited_per_user_and_stream(
        app_client: AppClient) -> None:
    client = await app_client(live_chat_per_minute=2, live_reactions_per_minute=3)
    host, viewer, other = [await new_user(client) for _ in range(3)]
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    await join(other, stream.id)
    await say(viewer, stream.id, "one")
    await say(viewer, stream.id, "two")
    err = await viewer.error(LiveChatCommand(id=cid(), stream_id=stream.id, body="three"))
    assert err.code == "rate_limited" and err.retry_after_s and err.retry_after_s > 0
    await say(other, stream.id, "another viewer is not held back")
    for _ in range(3):
        await viewer.cmd(LiveReact(id=cid(), stream_id=stream.id, kind=ReactionKind.HEART))
    err = await viewer.error(LiveReact(id=cid(), stream_id=stream.id, kind=ReactionKind.HEART))
    assert err.code == "rate_limited"


async def test_matched_users_are_told_unless_blocked(app_client: AppClient) -> None:
    client = await app_client()
    host, fan, blocked, stranger = [await new_user(client, n) for n in
                                    ("Ana", "Fan", "Blocked", "Stranger")]
    pet = await host.pet("Rex")
    await make_match(host, pet, fan, await fan.pet("Tom"))
    await make_match(host, await host.pet("Rex II"), blocked, await blocked.pet("Kit"))
    await sql(client, "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)",
              blocked.id, host.id)
    stream = (await go_live(host, "Beach day")).stream
    note = (await next_of(fan.sock, "notification")).notification
    assert note.kind == "live.started" and note.data["stream_id"] == stream.id
    assert note.title == "Ana is live" and note.body == "Beach day"
    await none_of(blocked.sock, "notification")
    await none_of(stranger.sock, "notification", within=0.1)


async def test_blocked_and_banned_hosts_streams_are_invisible(app_client: AppClient) -> None:
    client = await app_client()
    host, viewer, blocker, banned_host = [await new_user(client) for _ in range(4)]
    stream = (await go_live(host)).stream
    banned_stream = (await go_live(banned_host)).stream
    await join(viewer, stream.id)
    await join(blocker, stream.id)
    await sql(client, "UPDATE users SET banned_at = now() WHERE id = $1", banned_host.id)
    listed = await viewer.cmd(LiveList(id=cid()))
    assert [s.id for s in listed.streams] == [stream.id]
    err = await viewer.error(LiveJoin(id=cid(), stream_id=banned_stream.id))
    assert err.code == "not_found"

    # A block between a viewer and the host hides the stream from that viewer.
    await sql(client, "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)",
              host.id, blocker.id)
    assert (await blocker.cmd(LiveList(id=cid()))).streams == []
    for command in (LiveJoin(id=cid(), stream_id=stream.id),
                    LiveChatCommand(id=cid(), stream_id=stream.id, body="hi")):
        assert (await blocker.error(command)).code == "not_found"

    # Chat between viewers who block each other does not reach the other.
    await sql(client, "DELETE FROM user_blocks")
    await sql(client, "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)",
              viewer.id, blocker.id)
    await say(blocker, stream.id, "you can't see me")
    assert (await next_of(host.sock, "live.chat")).message.body == "you can't see me"
    await none_of(viewer.sock, "live.chat")
    await say(viewer, stream.id, "nor me")
    await next_of(host.sock, "live.chat")
    await none_of(blocker.sock, "live.chat")
    # ... nor in the recent chat a new socket of theirs gets.
    again = await join(viewer, stream.id, await viewer.connect())
    assert [m.body for m in again.recent_chat] == ["nor me"]


async def test_list_most_viewers_first_with_pages(app_client: AppClient) -> None:
    client = await app_client(live_sweep_s=0.05)
    hosts = [await new_user(client, f"H{i}") for i in range(3)]
    viewers = [await new_user(client, f"V{i}") for i in range(3)]
    streams = [(await go_live(h)).stream for h in hosts]
    # stream 1: three viewers, stream 2: one, stream 0: none.
    for v in viewers:
        await join(v, streams[1].id)
    await join(viewers[0], streams[2].id, await viewers[0].connect())
    asker = viewers[1]

    expected = [streams[1].id, streams[2].id, streams[0].id]

    async def sorted_by_viewers() -> bool:
        page = await asker.cmd(LiveList(id=cid()))
        return [(s.id, s.viewer_count) for s in page.streams] == list(
            zip(expected, [3, 1, 0], strict=True))

    await until(sorted_by_viewers, what="live.list sorted by viewers")
    page1 = await asker.cmd(LiveList(id=cid(), limit=2))
    assert [s.id for s in page1.streams] == expected[:2] and page1.next_cursor
    assert [s.viewer_count for s in page1.streams] == [3, 1]
    page2 = await asker.cmd(LiveList(id=cid(), limit=2, cursor=page1.next_cursor))
    assert [s.id for s in page2.streams] == expected[2:] and page2.next_cursor is None
    err = await asker.error(LiveList(id=cid(), cursor="garbage"))
    assert err.code == "bad_request"


async def test_live_list_uses_its_index(app_client: AppClient) -> None:
    client = await app_client()
    user = await new_user(client)
    pool = live_of(client).db
    # 400 hosts live now, 20,000 streams that ended: live.list must not scan the ended.
    await pool.execute(
        """WITH hosts AS (
               INSERT INTO users (email, display_name, password_hash)
               SELECT 'host' || g || '@bench.example', 'Host', 'x'
               FROM generate_series(1, 400) g RETURNING id)
           INSERT INTO live_streams (host_id, title, media, viewer_count)
           SELECT id, 't', 'p2p', (random() * 1000)::int FROM hosts""")
    await pool.execute(
        """INSERT INTO live_streams (host_id, title, media, status, ended_at)
           SELECT $1, 't', 'p2p', 'ended', now() FROM generate_series(1, 20000)""", user.id)
    await pool.execute("ANALYZE live_streams")
    plan = await pool.fetchval(
        """EXPLAIN (FORMAT JSON) SELECT s.id FROM live_streams s
           JOIN users hu ON hu.id = s.host_id
           WHERE s.status = 'live' ORDER BY s.viewer_count DESC, s.id DESC LIMIT 21""")
    assert "live_streams_by_viewers" in str(plan), plan
    page = await user.cmd(LiveList(id=cid(), limit=50))
    counts = [s.viewer_count for s in page.streams]
    assert len(counts) == 50 and counts == sorted(counts, reverse=True)
