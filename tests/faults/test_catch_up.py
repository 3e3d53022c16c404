"""Issue 17.1: a device that missed more than its outbox holds always catches up.

Catch-up is paced by the outbox: it waits for room instead of overflowing it, so a
client that reads at any steady speed gets every missed event, in order, once. 4008 is
for a consumer that stops reading live traffic. ``delivered_seq`` in the "socket closed"
log counts what was written to the socket, not what entered the outbox.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from protocol.codec import CODECS
from protocol.codes import CloseCode
from protocol.session import Hello
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.realtime.test_delivery import seqs
from tests.support import events
from tests.support.auth import register
from tests.support.proxy import TcpProxy, shrink_send_buffers
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, connect, open_session


@pytest.mark.parametrize("codec", ["petspark.v1.json", "petspark.v1.msgpack"])
async def test_missed_more_than_the_outbox_holds_catches_up(app_client: AppClient,
                                                            codec: str) -> None:
    client = await app_client(ws_outbox_bytes=16384)
    user = await register(client)
    # ~400 KiB missed: 25 times the outbox, in one commit (one notice, one read batch).
    await events.append_batch(client.app, [user.user_id], 400, body="x" * 1000)
    sock = await open_session(client, user.access_token, codec=codec, resume_from=0)
    assert sock.welcome is not None and sock.welcome.resumed is True
    assert await seqs(sock, 400) == list(range(1, 401))
    await events.append(client.app, [user.user_id], 1)  # then live again
    assert await seqs(sock, 1) == [401]
    await sock.expect_nothing()


async def test_thousands_of_missed_events_catch_up_at_the_smallest_outbox(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_outbox_bytes=4096)
    user = await register(client)
    await events.append_batch(client.app, [user.user_id], 3000)
    sock = await open_session(client, user.access_token, resume_from=0)
    assert await seqs(sock, 3000, timeout=10) == list(range(1, 3001))
    await sock.expect_nothing()


async def test_an_event_larger_than_the_outbox_is_still_delivered(app_client: AppClient) -> None:
    client = await app_client(ws_outbox_bytes=4096)
    user = await register(client)
    await events.append(client.app, [user.user_id], 2, body="y" * 6000)
    sock = await open_session(client, user.access_token, resume_from=0)
    assert await seqs(sock, 2) == [1, 2]  # each alone is over the limit: no livelock
    await events.append(client.app, [user.user_id], 1, body="y" * 6000)
    assert await seqs(sock, 1) == [3]


async def test_a_slow_steady_reader_catches_up_while_live_events_keep_coming(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_outbox_bytes=16384, event_position_check_s=0.5)
    user = await register(client)
    await events.append_batch(client.app, [user.user_id], 250, body="z" * 1000)
    # ~250 KiB through a 400 KiB/s link with small buffers: the outbox fills and drains
    # many times over while the client reads at its steady pace.
    assert client.server.port is not None
    proxy = await TcpProxy("127.0.0.1", client.server.port,
                           downstream_bytes_per_s=400_000, recv_buffer=4096).start()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{proxy.port}/ws",
                                       protocols=("petspark.v1.json",),
                                       headers={"Authorization": f"Bearer {user.access_token}"})
            sock = ProtocolSocket(ws, CODECS["petspark.v1.json"])
            await sock.send(Hello(resume_from=0))
            assert (await sock.receive()).wire_type() == "welcome"
            first = await seqs(sock, 10)
            await events.append(client.app, [user.user_id], 20, body="live")  # meanwhile
            rest = await seqs(sock, 260, timeout=10)
            assert first + rest == list(range(1, 271))
            await sock.expect_nothing()
            await ws.close()
    finally:
        await proxy.close()


async def test_logged_delivered_seq_counts_what_was_written(
    app_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client(ws_outbox_bytes=65536, heartbeat_s=0.5, ws_close_timeout_s=0.2)
    user = await register(client)
    await events.append_batch(client.app, [user.user_id], 2000, body="w" * 1000)
    assert client.server.port is not None
    proxy = await TcpProxy("127.0.0.1", client.server.port, recv_buffer=4096).start()
    caplog.set_level(logging.INFO, logger="server.gateway")
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{proxy.port}/ws",
                                       protocols=("petspark.v1.json",),
                                       headers={"Authorization": f"Bearer {user.access_token}"},
                                       autoping=False)
            assert shrink_send_buffers(client) >= 1
            sock = ProtocolSocket(ws, CODECS["petspark.v1.json"])
            proxy.stall(upstream=False)  # the device stops reading
            await sock.send(Hello(resume_from=0))
            hub = client.app[RUNTIME].deps.node.hub
            await until(lambda: len(hub) == 1, what="the session to start")
            (conn,) = list(hub.connections())
            await until(lambda: conn.cursor.delivered > 0 and conn._queued > 0,
                        what="events waiting in the outbox")
            # Silent (it never sees a ping to answer): closed 4002, the transport cut.
            def closed() -> list[logging.LogRecord]:
                return [r for r in caplog.records if r.getMessage() == "socket closed"]

            await until(lambda: bool(closed()), timeout=10, what="the socket to be dropped")
            assert len(hub) == 0
            queued = conn.cursor.delivered
            (record,) = closed()
            written: int = record.delivered_seq  # type: ignore[attr-defined]
            assert 0 < written < queued, (written, queued)
            assert record.close_code == CloseCode.HEARTBEAT_TIMEOUT  # type: ignore[attr-defined]
    finally:
        await proxy.close()


async def test_a_live_burst_past_the_outbox_is_a_slow_consumer_that_resumes(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_outbox_bytes=8192)
    user = await register(client)
    sock = await connect(client, token=user.access_token)
    await sock.hello()
    # Live traffic past the outbox in one go (one commit): that is a slow consumer.
    await events.append_batch(client.app, [user.user_id], 40, body="x" * 1000)
    await sock.expect_close(CloseCode.SLOW_CONSUMER)
    back = await open_session(client, user.access_token, resume_from=0)
    assert back.welcome is not None and back.welcome.resumed is True
    assert await seqs(back, 40) == list(range(1, 41))
