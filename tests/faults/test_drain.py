"""Issue 17.5: shutdown drains in an order that drops nothing.

New upgrades are refused (503, ``Retry-After``; ``/readyz`` says draining) while every
open socket keeps being served — frames read, commands answered — until it has been
closed 1001; a socket busy with a command gets that command's reply first. The real
process does this on SIGTERM before aiohttp's runner stops (its pre-shutdown would drop
every inbound frame), and still exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from protocol.chat import ChatConversations
from protocol.codec import JSON
from protocol.codes import CloseCode
from protocol.pets import PetsMine
from protocol.session import Error, Ok
from server.state import RUNTIME
from tests.conftest import TEST_SECRET
from tests.faults.helpers import Gate
from tests.gateway.conftest import AppClient
from tests.support.auth import register, unique_email
from tests.support.services import free_port
from tests.support.waiting import until, wait_ready
from tests.support.ws import ProtocolSocket, connect, open_session

ROOT = Path(__file__).resolve().parents[2]


async def test_open_sockets_are_served_until_each_is_closed_1001(app_client: AppClient) -> None:
    client = await app_client(shutdown_spread_s=0.6, ws_rate_per_s=10_000, ws_rate_burst=10_000,
                              ws_frames_per_s=10_000, ws_frames_burst=10_000)
    user = await register(client)
    socks = [await open_session(client, user.access_token) for _ in range(3)]
    gateway = client.app[RUNTIME].gateway
    draining = asyncio.create_task(gateway.drain())
    await until(lambda: not gateway.accepting, what="draining to start")

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(client, token=user.access_token)
    assert refused.value.status == 503
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["gateway"] == "draining"

    # The last socket is closed ~0.6 s in; until then its commands are answered.
    last = socks[-1]
    answered = 0
    while True:
        try:
            reply = await last.request(ChatConversations(id=f"d{answered}"), timeout=5)
        except Exception:
            break
        assert isinstance(reply, (Ok, Error)), reply
        if isinstance(reply, Error):
            assert reply.code == "unavailable"  # sent as the close was being decided
            break
        answered += 1
    assert answered > 0
    for sock in socks:
        await sock.expect_close(CloseCode.GOING_AWAY, timeout=5)
    await draining
    assert len(client.app[RUNTIME].deps.node.hub) == 0


async def test_a_busy_socket_gets_its_reply_then_1001(app_client: AppClient) -> None:
    gate = Gate()
    client = await app_client(handlers={PetsMine: gate.handler()})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await sock.send(PetsMine(id="busy"))
    await until(lambda: gate.started == ["busy"], what="the command to start")
    gateway = client.app[RUNTIME].gateway
    draining = asyncio.create_task(gateway.drain())
    await until(lambda: not gateway.accepting, what="draining to start")
    # A command sent now is refused (reconnect and retry elsewhere), at once.
    refused = await sock.request(ChatConversations(id="late"))
    assert isinstance(refused, Error) and refused.code == "unavailable"
    assert refused.retry_after_s is not None
    gate.open.set()
    reply = await sock.expect("ok")
    assert reply.id == "busy"
    await sock.expect_close(CloseCode.GOING_AWAY)
    await draining


async def test_sigterm_keeps_serving_sockets_until_their_1001(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "DATA_DIR": str(tmp_path),
           "SECRET_KEY": TEST_SECRET, "PASSWORD_HASH_TIME_COST": "1",
           "PASSWORD_HASH_MEMORY_KIB": "8", "LOG_LEVEL": "info",
           "AUTH_REGISTER_PER_HOUR": "100000", "SHUTDOWN_SPREAD_S": "2.0",
           "WS_RATE_PER_S": "1000000", "WS_RATE_BURST": "1000000",
           "WS_FRAMES_PER_S": "1000000", "WS_FRAMES_BURST": "1000000"}
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, log_path)
            async with http.post(f"{base}/api/v1/auth/register", json={
                    "email": unique_email(), "password": "correct horse 1",
                    "display_name": "T"}) as resp:
                token = (await resp.json())["access_token"]
            socks = []
            for _ in range(4):
                ws = await http.ws_connect(f"{base}/ws",
                                           headers={"Authorization": f"Bearer {token}"})
                sock = ProtocolSocket(ws, JSON)
                await sock.hello()
                socks.append(sock)

            proc.send_signal(signal.SIGTERM)

            async def keep_asking(sock: ProtocolSocket) -> tuple[int, int | None]:
                """Commands until the close: each gets its reply, or the close comes."""
                answered = 0
                while True:
                    await sock.send(PetsMine(id=sock.next_id()))
                    msg = await sock.ws.receive(timeout=5)
                    if msg.type == aiohttp.WSMsgType.CLOSE:
                        return answered, msg.data
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    if '"type":"ok"' in msg.data:
                        answered += 1
                    elif '"type":"error"' in msg.data:
                        assert '"unavailable"' in msg.data, msg.data
                        closing = await sock.ws.receive(timeout=5)
                        assert closing.type == aiohttp.WSMsgType.CLOSE
                        return answered, closing.data

            results = await asyncio.gather(*(keep_asking(s) for s in socks))
            assert all(code == CloseCode.GOING_AWAY for _, code in results), results
            # Sockets closed later in the spread (the last ~1.5 s after SIGTERM) kept
            # answering meanwhile: each of those commands got its reply (before aiohttp's
            # pre-shutdown ran first and dropped every inbound frame: a handful at most).
            assert max(answered for answered, _ in results) >= 20, results
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    text = log_path.read_text()
    assert "listening on" in text and '"stopped"' in text
    assert "Traceback" not in text
