"""Heartbeat, slow consumers, token expiry/refresh and shutdown (PROTOCOL §5 to §7)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from protocol.codes import CloseCode
from protocol.session import AuthRefresh, Ping, Pong
from server.gateway.gateway import Gateway
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register
from tests.support.tokens import short_lived_token
from tests.support.waiting import past, until
from tests.support.ws import open_session


def gateway_of(client: TestClient[Any, Any]) -> Gateway:
    gateway = client.app[RUNTIME].gateway
    assert isinstance(gateway, Gateway)
    return gateway


async def test_server_pings_and_pong_keeps_the_socket(app_client: AppClient) -> None:
    client = await app_client(heartbeat_s=0.2)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    assert sock.welcome is not None and sock.welcome.heartbeat_s == 0.2
    sock.auto_pong = False
    await sock.expect("ping", timeout=1)
    await sock.send(Pong())
    for _ in range(5):  # 5 heartbeats, more than 2 x heartbeat_s, answering each ping
        await sock.expect("ping", timeout=1)
        await sock.send(Pong())
    assert not sock.ws.closed


async def test_silent_client_is_closed_4002(app_client: AppClient) -> None:
    client = await app_client(heartbeat_s=0.2)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    # Never answers. The server's own pings are the clock: silence of 2 x heartbeat_s
    # spans at least one ping and is noticed by the check at the heartbeat after it.
    pings = 0
    while (msg := await sock.ws.receive(timeout=3)).type is WSMsgType.TEXT:
        assert isinstance(sock.codec.decode_server(msg.data), Ping), msg.data
        pings += 1
    assert msg.type is WSMsgType.CLOSE and msg.data == CloseCode.HEARTBEAT_TIMEOUT, msg
    assert 1 <= pings <= 3, pings


async def test_slow_consumer_is_closed_4008(app_client: AppClient) -> None:
    client = await app_client(ws_outbox_bytes=8192)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    # One commit of 40 events of ~1 KiB: more than the outbox can take in one go.
    await events.append_batch(client.app, [user.user_id], 40, body="x" * 1000)
    await sock.expect_close(CloseCode.SLOW_CONSUMER)


async def test_auth_refresh_same_user_other_user_and_garbage(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    other = await register(client)
    sock = await open_session(client, user.access_token)
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert resp.status == 200
    fresh = (await resp.json())["access_token"]
    result = await sock.command(AuthRefresh(id="r1", token=fresh))
    assert result.expires_at.timestamp() > time.time()
    reply = await sock.request(AuthRefresh(id="r2", token=other.access_token))
    assert reply.code == "forbidden"
    reply = await sock.request(AuthRefresh(id="r3", token="garbage"))
    assert reply.code == "unauthorized"


async def test_expired_token_closes_4009(app_client: AppClient) -> None:
    client = await app_client(token_expiry_grace_s=0.0, heartbeat_s=5)
    user = await register(client)
    token = short_lived_token(client.app, user, ttl_s=1)
    sock = await open_session(client, token)
    await sock.expect_close(CloseCode.TOKEN_EXPIRED, timeout=3)


async def test_refresh_before_expiry_keeps_the_socket(app_client: AppClient) -> None:
    client = await app_client(token_expiry_grace_s=0.0, heartbeat_s=5)
    user = await register(client)
    expired_at = time.time() + 1
    sock = await open_session(client, short_lived_token(client.app, user, ttl_s=1))
    await sock.command(AuthRefresh(id="r1", token=user.access_token))
    # Past the first token's expiry, then two sweeps: the refreshed socket stays.
    await past(expired_at + 1)
    sweeper = gateway_of(client).sweeper
    done = sweeper.rounds
    await until(lambda: sweeper.rounds >= done + 2, what="two sweeps")
    await sock.expect_nothing(0.05)
    assert not sock.ws.closed


async def test_shutdown_closes_every_socket_1001(aiohttp_server: object,
                                                 app_client: AppClient) -> None:
    client = await app_client(shutdown_spread_s=0.2)
    user = await register(client)
    socks = [await open_session(client, user.access_token) for _ in range(3)]
    await client.server.app.shutdown()
    for sock in socks:
        await sock.expect_close(CloseCode.GOING_AWAY, timeout=3)


async def test_idle_socket_releases_its_writer_and_busy_one_gets_it_back(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_writer_idle_s=0.1)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    (conn,) = list(client.app[RUNTIME].deps.node.hub.connections())
    await until(lambda: conn._writer is None and conn._queue is None,
                what="the idle writer to end")
    await events.append(client.app, [user.user_id], 2)
    assert [(await sock.expect("notification")).seq for _ in range(2)] == [1, 2]
