"""Issue 17.7: logs and ``petspark_ws_closes_total`` record the close code the server sent
(not the peer's echo, which reads 1000 or 1006); a client that stopped reading (its TCP
buffer full, so not even the close frame gets through) has its transport cut after
``WS_CLOSE_TIMEOUT_S``, counted in ``petspark_ws_transport_aborts_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from protocol.codec import CODECS
from protocol.codes import CloseCode
from server.state import METRICS, RUNTIME
from tests.faults.helpers import records
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import Registered, register
from tests.support.proxy import TcpProxy, shrink_send_buffers
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, open_session


def closes(client: TestClient[Any, Any], code: int) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "petspark_ws_closes_total", {"code": str(code)})
    return value or 0.0


def aborts(client: TestClient[Any, Any], code: int) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "petspark_ws_transport_aborts_total", {"code": str(code)})
    return value or 0.0


Provoke = Callable[[TestClient[Any, Any], Registered, ProtocolSocket], Awaitable[None]]


async def silent(client: TestClient[Any, Any], user: Registered, sock: ProtocolSocket) -> None:
    sock.auto_pong = False  # never answers a ping


async def slow(client: TestClient[Any, Any], user: Registered, sock: ProtocolSocket) -> None:
    await events.append_batch(client.app, [user.user_id], 40, body="x" * 1000)


async def revoked(client: TestClient[Any, Any], user: Registered, sock: ProtocolSocket) -> None:
    resp = await client.post("/api/v1/auth/logout", headers=user.bearer)
    assert resp.status == 204


async def drained(client: TestClient[Any, Any], user: Registered, sock: ProtocolSocket) -> None:
    await client.app[RUNTIME].gateway.drain()


async def flood(client: TestClient[Any, Any], user: Registered, sock: ProtocolSocket) -> None:
    (conn,) = list(client.app[RUNTIME].deps.node.hub.connections())
    i = 0
    while conn.close_code is None and i < 100_000:  # over the rate until closed
        await sock.send_raw(f'{{"type": "nope", "id": "f{i}"}}')
        i += 1


@pytest.mark.parametrize(("code", "provoke", "settings"), [
    (CloseCode.HEARTBEAT_TIMEOUT, silent, {"heartbeat_s": 0.2}),
    (CloseCode.SLOW_CONSUMER, slow, {"ws_outbox_bytes": 8192}),
    (CloseCode.NOT_AUTHENTICATED, revoked, {}),
    (CloseCode.GOING_AWAY, drained, {}),
    (CloseCode.RATE_LIMIT_ABUSE, flood, {"ws_rate_per_s": 1.0, "ws_rate_burst": 2,
                                          "ws_abuse_s": 0.05}),
], ids=["4002", "4008", "4001", "1001", "4029"])
async def test_the_code_recorded_is_the_code_sent(
    app_client: AppClient, caplog: pytest.LogCaptureFixture, code: CloseCode,
    provoke: Provoke, settings: dict[str, Any],
) -> None:
    client = await app_client(**settings)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    caplog.set_level(logging.INFO, logger="server.gateway")
    await provoke(client, user, sock)
    await sock.expect_close(code, timeout=5)
    await until(lambda: bool(records(caplog, "socket closed")), what="the close to be logged")
    (record,) = records(caplog, "socket closed")
    assert record.close_code == code  # type: ignore[attr-defined]
    assert record.closed_by == "server"  # type: ignore[attr-defined]
    assert closes(client, code) == 1
    assert closes(client, 1000) == 0 and closes(client, 1006) == 0


async def test_a_client_close_is_recorded_with_its_own_code(
    app_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client()
    user = await register(client)
    sock = await open_session(client, user.access_token)
    caplog.set_level(logging.INFO, logger="server.gateway")
    await sock.ws.close(code=4321)
    await until(lambda: bool(records(caplog, "socket closed")), what="the close to be logged")
    (record,) = records(caplog, "socket closed")
    assert (record.close_code, record.closed_by) == (4321, "client")  # type: ignore[attr-defined]
    assert closes(client, 4321) == 1


async def test_a_consumer_with_a_full_tcp_buffer_is_cut_after_the_close_timeout(
    app_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client(ws_outbox_bytes=16384, ws_close_timeout_s=0.3,
                              heartbeat_s=30)
    user = await register(client)
    assert client.server.port is not None
    proxy = await TcpProxy("127.0.0.1", client.server.port, recv_buffer=4096).start()
    caplog.set_level(logging.INFO, logger="server.gateway")
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{proxy.port}/ws",
                                       protocols=("petspark.v1.json",), headers=user.bearer)
            shrink_send_buffers(client)
            sock = ProtocolSocket(ws, CODECS["petspark.v1.json"])
            await sock.hello()
            hub = client.app[RUNTIME].deps.node.hub
            (conn,) = list(hub.connections())
            proxy.stall(upstream=False)  # the device stops reading live traffic
            # Live events, commits that each fit the outbox, until it overflows.
            sent = 0
            while conn.close_code is None and sent < 5000:
                await events.append_batch(client.app, [user.user_id], 12, body="y" * 1000)
                sent += 12
            assert conn.close_code == CloseCode.SLOW_CONSUMER
            await until(lambda: bool(records(caplog, "socket closed")), timeout=5,
                        what="the socket to be dropped")
            assert len(hub) == 0
            (record,) = records(caplog, "socket closed")
            assert record.close_code == CloseCode.SLOW_CONSUMER  # type: ignore[attr-defined]
            assert record.transport_cut is True  # type: ignore[attr-defined]
            assert aborts(client, CloseCode.SLOW_CONSUMER) == 1
            assert closes(client, CloseCode.SLOW_CONSUMER) == 1
            await proxy.cut()  # the device's side of the dead connection goes too
            await ws.close()
    finally:
        await proxy.close()

    back = await open_session(client, user.access_token, resume_from=0)
    assert back.welcome is not None and back.welcome.resumed is True
    assert back.welcome.last_seq == sent

