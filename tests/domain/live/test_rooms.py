"""Room fan-out across nodes: chat, coalesced reactions, viewer counts, end, the p2p cap,
signalling rules, host grace, and a crashed node's viewers dropping out."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from protocol.live import LiveEnd, LiveJoin, LiveLeave, LiveList, LiveReact, LiveSignalCommand
from protocol.objects import ReactionKind, StreamStatus
from server.domain.live.service import room_of
from tests.conftest import TEST_SECRET, AppClient
from tests.domain.conftest import cid, new_user
from tests.domain.live.helpers import deps_of, go_live, join, next_of, none_of, say
from tests.support.auth import register
from tests.support.services import free_port
from tests.support.waiting import until, wait_ready
from tests.support.ws import open_session

ROOT = Path(__file__).resolve().parents[3]


async def test_two_nodes_share_chat_counts_reactions_and_end(app_client: AppClient) -> None:
    a, b = await app_client(), await app_client()
    host = await new_user(a, "Host")
    on_a = [await new_user(a, f"A{i}") for i in range(2)]
    on_b = [await new_user(b, f"B{i}") for i in range(3)]
    stream = (await go_live(host)).stream
    for viewer in on_a + on_b:
        await join(viewer, stream.id)
    everyone = [host, *on_a, *on_b]

    # Distinct users across nodes: a second socket of one viewer on the other node
    # does not count twice; the host is not a viewer.
    twin = await open_session(a, on_b[0].reg.access_token)
    second = await twin.command(LiveJoin(id=cid(), stream_id=stream.id))
    assert second.stream.viewer_count == 5
    assert await deps_of(b).node.room_count(room_of(stream.id), uncounted=host.id) == 5

    # Chat from node B reaches every member on both nodes (the twin socket too).
    sent = await say(on_b[1], stream.id, "hello from B")
    for user in everyone:
        assert (await next_of(user.sock, "live.chat")).message == sent.message
    assert (await next_of(twin, "live.chat")).message == sent.message

    # Viewer counts reach the host and viewers as live.viewers (≤ every 2 s, coalesced).
    event = await next_of(host.sock, "live.viewers", where=lambda e: e.count == 5)
    assert event.stream_id == stream.id

    # Reactions from both nodes: summed into few live.reactions, never one per reaction.
    kinds = [ReactionKind.HEART, ReactionKind.PAW]

    async def react_four_times(viewer: Any) -> None:  # one socket: one command at a time
        for i in range(4):
            await viewer.cmd(LiveReact(id=cid(), stream_id=stream.id, kind=kinds[i % 2]))

    await asyncio.gather(*(react_four_times(v) for v in on_a + on_b))
    total: dict[str, int] = {}
    times: list[float] = []
    loop = asyncio.get_running_loop()
    while sum(total.values()) < 20:
        event = await next_of(on_a[0].sock, "live.reactions", timeout=10)
        times.append(loop.time())
        for kind, n in event.counts.items():
            total[kind] = total.get(kind, 0) + n
    assert total == {"heart": 10, "paw": 10}
    assert len(times) <= 3, f"{len(times)} live.reactions events for 20 reactions"
    # At most one per second per stream (Redis time; a little slack for delivery jitter).
    assert all(later - earlier >= 0.8 for earlier, later in itertools.pairwise(times))
    # Every member saw the same sums.
    seen: dict[str, int] = {}
    while sum(seen.values()) < 20:
        for kind, n in (await next_of(on_b[2].sock, "live.reactions")).counts.items():
            seen[kind] = seen.get(kind, 0) + n
    assert seen == total

    # Leaving and closing a socket both lower the count.
    await on_a[1].cmd(LiveLeave(id=cid(), stream_id=stream.id))
    await on_b[2].sock.close()
    await next_of(host.sock, "live.viewers", where=lambda e: e.count == 3, timeout=10)

    # The end reaches members on both nodes; both nodes leave the room's channel.
    await host.cmd(LiveEnd(id=cid(), stream_id=stream.id))
    for user in [host, on_a[0], *on_b[:2]]:
        assert (await next_of(user.sock, "live.ended")).stream_id == stream.id
    await none_of(on_a[1].sock, "live.ended", within=0.2)
    for client in (a, b):
        node = deps_of(client).node
        await until(lambda node=node: not node.local_rooms("live:"),  # type: ignore[misc]
                    what="the room to be gone")


async def test_node_without_members_gets_no_room_traffic(app_client: AppClient) -> None:
    a, b = await app_client(), await app_client()
    host, viewer = await new_user(a), await new_user(a)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    node_b = deps_of(b).node
    before = node_b.metrics.room_messages._value.get()
    await say(viewer, stream.id, "only node A listens")
    await next_of(host.sock, "live.chat")
    assert node_b.metrics.room_messages._value.get() == before
    assert deps_of(a).node.metrics.room_messages._value.get() > 0


async def test_p2p_cap_holds_across_nodes(app_client: AppClient) -> None:
    a, b = await app_client(live_p2p_max_viewers=2), await app_client(live_p2p_max_viewers=2)
    host = await new_user(a)
    stream = (await go_live(host)).stream
    first = await new_user(a)
    await join(first, stream.id)
    racers = [await new_user(a), await new_user(b)]
    replies = await asyncio.gather(*(r.sock.request(LiveJoin(id=cid(), stream_id=stream.id))
                                     for r in racers))
    assert sorted(getattr(r, "code", "ok") for r in replies) == ["conflict", "ok"]
    late = await new_user(b)
    assert (await late.error(LiveJoin(id=cid(), stream_id=stream.id))).code == "conflict"
    # A viewer's second socket and the host are not extra viewers.
    laptop = await first.connect()
    await join(first, stream.id, laptop)
    await join(host, stream.id, await host.connect())
    # Leaving with one of two sockets keeps the viewer in; with both, there is room again.
    await first.cmd(LiveLeave(id=cid(), stream_id=stream.id))
    assert (await late.error(LiveJoin(id=cid(), stream_id=stream.id))).code == "conflict"
    await laptop.command(LiveLeave(id=cid(), stream_id=stream.id))
    await join(late, stream.id)


async def _count(client: Any, stream_id: str, host_id: str, expected: int) -> bool:
    return await deps_of(client).node.room_count(room_of(stream_id), uncounted=host_id) \
        == expected


async def test_signal_is_relayed_between_host_and_joined_viewers_only(
        app_client: AppClient) -> None:
    a, b = await app_client(), await app_client()
    host = await new_user(a)
    viewer, other, outsider = await new_user(b), await new_user(b), await new_user(a)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    await join(other, stream.id)

    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    await host.cmd(LiveSignalCommand(id=cid(), stream_id=stream.id, to=viewer.id, data=offer))
    got = await next_of(viewer.sock, "live.signal")
    assert got.stream_id == stream.id and got.from_ == host.id and got.data == offer
    await none_of(other.sock, "live.signal")  # only the addressee

    answer = {"type": "answer", "sdp": "v=0\r\n"}
    await viewer.cmd(LiveSignalCommand(id=cid(), stream_id=stream.id, to=host.id, data=answer))
    got = await next_of(host.sock, "live.signal")
    assert got.from_ == viewer.id and got.data == answer

    def sig(to: str, data: dict[str, Any] | None = None) -> LiveSignalCommand:
        return LiveSignalCommand(id=cid(), stream_id=stream.id, to=to, data=data or {"x": 1})

    assert (await viewer.error(sig(other.id))).code == "forbidden"  # viewer → viewer
    assert (await host.error(sig(outsider.id))).code == "forbidden"  # not joined
    assert (await host.error(sig(host.id))).code == "forbidden"
    assert (await outsider.error(sig(host.id))).code == "forbidden"  # outsider → host
    big = {"sdp": "a" * (16 * 1024)}
    assert (await viewer.error(sig(host.id, big))).code == "too_large"
    just_fits = {"sdp": "a" * (16 * 1024 - len('{"sdp":""}'))}
    await viewer.cmd(sig(host.id, just_fits))
    assert (await next_of(host.sock, "live.signal")).data == just_fits
    # A viewer who left can no longer be signalled.
    await other.cmd(LiveLeave(id=cid(), stream_id=stream.id))
    await until(lambda: _has_left(a, stream.id, other.id), what="other to leave")
    assert (await host.error(sig(other.id))).code == "forbidden"


async def _has_left(client: Any, stream_id: str, user_id: str) -> bool:
    return not await deps_of(client).node.room_has_user(room_of(stream_id), user_id)


async def test_host_grace_ends_a_stream_whose_host_is_gone(app_client: AppClient) -> None:
    a = await app_client(live_host_grace_s=0.5, live_sweep_s=0.05)
    b = await app_client(live_host_grace_s=0.5, live_sweep_s=0.05)
    host, viewer = await new_user(a), await new_user(b)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    await host.sock.close()
    assert (await next_of(viewer.sock, "live.ended", timeout=10)).stream_id == stream.id
    listed = await viewer.cmd(LiveList(id=cid()))
    assert listed.streams == []


async def test_host_back_within_grace_keeps_the_stream(app_client: AppClient) -> None:
    client = await app_client(live_host_grace_s=1.0, live_sweep_s=0.05)
    host, viewer = await new_user(client), await new_user(client)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    phone = await host.connect()  # another device keeps the host online
    await host.sock.close()
    await none_of(viewer.sock, "live.ended", within=1.6)
    await phone.close()
    back = await host.connect()  # the host comes back within the grace on a new socket
    await none_of(viewer.sock, "live.ended", within=1.6)
    rejoined = await back.command(LiveJoin(id=cid(), stream_id=stream.id))
    assert rejoined.stream.status == StreamStatus.LIVE and rejoined.view.role == "host"
    await back.close()
    assert (await next_of(viewer.sock, "live.ended", timeout=10)).stream_id == stream.id


async def test_a_crashed_nodes_viewers_drop_out_of_the_count(
        app_client: AppClient, database_url: str, redis_url: str, redis_prefix: str,
        tmp_path: Path) -> None:
    """Node B is a real server process, SIGKILLed: its viewers never leave, their room
    presence entries expire (TTL twice HEARTBEAT_S) and the count drops. The heartbeat is
    short, but not so short that a loaded machine (the whole suite on two cores) lets a
    live node's entries lapse between its refreshes (every TTL / 3)."""
    heartbeat = 2.0
    a = await app_client(heartbeat_s=heartbeat)
    host = await new_user(a)
    stream = (await go_live(host)).stream
    local = await new_user(a)
    await join(local, stream.id)

    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "DATA_DIR": str(tmp_path),
           "SECRET_KEY": TEST_SECRET, "PASSWORD_HASH_TIME_COST": "1",
           "PASSWORD_HASH_MEMORY_KIB": "8", "LOG_LEVEL": "warning",
           "AUTH_REGISTER_PER_HOUR": "100000", "HEARTBEAT_S": str(heartbeat)}
    log = (tmp_path / "node-b.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, tmp_path / "node-b.log")
            viewers_b = [await register(a) for _ in range(2)]
            sockets = []
            for reg in viewers_b:
                ws = await http.ws_connect(f"{base}/ws", protocols=("petspark.v1.json",),
                                           headers={"Authorization": f"Bearer {reg.access_token}"})
                await ws.send_str('{"type": "hello"}')
                assert (await ws.receive_json(timeout=5))["type"] == "welcome"
                await ws.send_json({"type": "live.join", "id": "j", "stream_id": stream.id})
                while (reply := await ws.receive_json(timeout=5))["type"] != "ok":
                    assert reply["type"] != "error", reply
                sockets.append(ws)

            async def keep_answering(ws: aiohttp.ClientWebSocketResponse) -> None:
                # HEARTBEAT_S is short: a socket that does not pong is closed 4002 (and
                # would leave the room the ordinary way, which is not what is tested).
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT and '"ping"' in msg.data:
                        await ws.send_str('{"type": "pong"}')

            pongers = [asyncio.create_task(keep_answering(ws)) for ws in sockets]
            await until(lambda: _count(a, stream.id, host.id, 3), timeout=15, what="3 viewers")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            # No goodbye from node B: the entries expire.
            await until(lambda: _count(a, stream.id, host.id, 1), timeout=20,
                        what="node B's viewers to drop out")
            event = await next_of(host.sock, "live.viewers", where=lambda e: e.count == 1,
                                  timeout=20)
            assert event.stream_id == stream.id
            for task in pongers:
                task.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def test_memory_backend_single_node(app_client: AppClient) -> None:
    """The embedded default (no Redis): the same rules with in-process room presence,
    chat history and reaction counts."""
    client = await app_client(redis=False)
    host, viewer = await new_user(client), await new_user(client)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    await say(viewer, stream.id, "hi")
    await next_of(host.sock, "live.chat")
    for _ in range(5):
        await viewer.cmd(LiveReact(id=cid(), stream_id=stream.id, kind=ReactionKind.WOW))
    event = await next_of(host.sock, "live.reactions")
    assert event.counts == {"wow": 5}
    await next_of(host.sock, "live.viewers", where=lambda e: e.count == 1)
    other = await new_user(client)
    again = await join(other, stream.id)
    assert [m.body for m in again.recent_chat] == ["hi"] and again.stream.viewer_count == 2
    await next_of(host.sock, "live.viewers", where=lambda e: e.count == 2, timeout=10)
    await viewer.sock.close()
    await next_of(host.sock, "live.viewers", where=lambda e: e.count == 1, timeout=10)
