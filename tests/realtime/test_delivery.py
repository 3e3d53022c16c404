"""Nothing lost (PROTOCOL §3): seq order, resume, gap fill, several devices and nodes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from protocol.session import Ack
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register
from tests.support.ws import ProtocolSocket, open_session


async def seqs(sock: ProtocolSocket, count: int, timeout: float = 5.0) -> list[int]:
    out = []
    for _ in range(count):
        event = await sock.expect("notification", timeout=timeout)
        out.append(event.seq)
    return out


async def test_live_events_reach_every_device_in_order(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    phone = await open_session(client, user.access_token)
    laptop = await open_session(client, user.access_token)
    await events.append(client.app, [user.user_id], 5)
    assert await seqs(phone, 5) == [1, 2, 3, 4, 5]
    assert await seqs(laptop, 5) == [1, 2, 3, 4, 5]
    await phone.expect_nothing()


async def test_no_resume_from_starts_after_last_seq(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    await events.append(client.app, [user.user_id], 3)
    sock = await open_session(client, user.access_token)
    assert sock.welcome is not None and sock.welcome.last_seq == 3
    assert sock.welcome.resumed is False
    await sock.expect_nothing(0.3)
    await events.append(client.app, [user.user_id], 1)
    assert await seqs(sock, 1) == [4]


async def test_resume_replays_missed_events_then_continues_live(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await events.append(client.app, [user.user_id], 3)
    assert await seqs(sock, 3) == [1, 2, 3]
    await sock.send(Ack(seq=3))
    await sock.ws.close()  # the device drops mid-stream
    await events.append(client.app, [user.user_id], 4)
    back = await open_session(client, user.access_token, resume_from=3)
    assert back.welcome is not None
    assert back.welcome.resumed is True and back.welcome.last_seq == 7
    assert await seqs(back, 4) == [4, 5, 6, 7]
    await events.append(client.app, [user.user_id], 1)
    assert await seqs(back, 1) == [8]
    await back.expect_nothing()


async def test_events_committed_during_replay_are_delivered_once(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    await events.append_batch(client.app, [user.user_id], 1500)
    writer = asyncio.create_task(events.append(client.app, [user.user_id], 50))
    back = await open_session(client, user.access_token, resume_from=0)
    assert back.welcome is not None and back.welcome.resumed is True
    await writer
    assert await seqs(back, 1550) == list(range(1, 1551))
    await back.expect_nothing()


async def test_resume_from_a_pruned_seq_is_not_resumed(
    app_client: AppClient, database_url: str
) -> None:
    client = await app_client()
    user = await register(client)
    await events.append(client.app, [user.user_id], 3)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE events SET created_at = now() - interval '40 days' "
                           "WHERE user_id = $1 AND seq <= 2", user.user_id)
    finally:
        await conn.close()
    assert await client.app[RUNTIME].deps.stream.prune(timedelta(days=30)) == 2
    sock = await open_session(client, user.access_token, resume_from=0)
    assert sock.welcome is not None
    assert sock.welcome.resumed is False and sock.welcome.last_seq == 3
    await sock.expect_nothing(0.3)
    ok = await open_session(client, user.access_token, resume_from=2)
    assert ok.welcome is not None and ok.welcome.resumed is True
    assert await seqs(ok, 1) == [3]


async def test_resume_from_the_future_is_not_resumed(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    await events.append(client.app, [user.user_id], 1)
    sock = await open_session(client, user.access_token, resume_from=99)
    assert sock.welcome is not None
    assert sock.welcome.resumed is False and sock.welcome.last_seq == 1


async def test_dropped_notice_is_filled_by_the_position_check(
    app_client: AppClient,
) -> None:
    client = await app_client(event_position_check_s=0.2)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    stream = client.app[RUNTIME].deps.stream
    # Commit an event but publish nothing: the broker "dropped" it.
    async with stream.pool.acquire() as conn, conn.transaction():
        from server.realtime.stream import Transaction

        await Transaction(conn).append([user.user_id], events.notification("silent"))
    event = await sock.expect("notification", timeout=2)
    assert event.seq == 1 and event.notification.title == "silent"


async def test_gap_in_live_notices_is_filled_from_the_database(app_client: AppClient) -> None:
    client = await app_client(event_position_check_s=60)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    stream = client.app[RUNTIME].deps.stream
    async with stream.pool.acquire() as conn, conn.transaction():
        from server.realtime.stream import Transaction

        await Transaction(conn).append([user.user_id], events.notification("dropped"))
    await events.append(client.app, [user.user_id], 1)  # seq 2 arrives live: gap → fill
    first = await sock.expect("notification", timeout=2)
    second = await sock.expect("notification", timeout=2)
    assert (first.seq, first.notification.title) == (1, "dropped")
    assert second.seq == 2


async def test_concurrent_writers_for_one_user_never_skip(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    other = await register(client)
    sock = await open_session(client, user.access_token)
    writers = [events.append(client.app, [user.user_id, other.user_id], 5) for _ in range(8)]
    await asyncio.gather(*writers)
    assert await seqs(sock, 40) == list(range(1, 41))
    await sock.expect_nothing()


async def test_two_nodes_share_delivery(app_client: AppClient) -> None:
    node_a = await app_client()
    node_b = await app_client()
    user = await register(node_a)
    phone = await open_session(node_a, user.access_token)
    laptop = await open_session(node_b, user.access_token)
    await events.append(node_a.app, [user.user_id], 3)
    await events.append(node_b.app, [user.user_id], 3)
    assert await seqs(phone, 6) == [1, 2, 3, 4, 5, 6]
    assert await seqs(laptop, 6) == [1, 2, 3, 4, 5, 6]


async def test_large_fanout_notice_without_payload_is_read_from_db(
    app_client: AppClient,
) -> None:
    client = await app_client()
    user = await register(client)
    sock = await open_session(client, user.access_token)
    # > INLINE_PAYLOAD_LIMIT in one commit: the groups beyond it carry no payloads.
    await events.append_batch(client.app, [user.user_id], 300, body="y" * 1000)
    assert await seqs(sock, 300) == list(range(1, 301))
