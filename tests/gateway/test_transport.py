"""HTTP transport limits (issue #17 item 13): header and body read timeouts, the cap on
sockets awaiting their ``hello`` per address, and a ``Server`` header without versions.
Driven over raw TCP where a well-behaved client library would not misbehave enough."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.waiting import past
from tests.support.ws import ProtocolSocket, connect

Client = TestClient[Any, Any]


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (bounded wait)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_a_slow_request_head_is_cut_at_the_header_timeout(app_client: AppClient) -> None:
    client: Client = await app_client(http_header_timeout_s=0.5)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # A header line every 0.2 s: never silent for the 0.5 s timeout, so only a deadline
    # on the whole head (not one that each byte extends) cuts it while it still dribbles.
    answer = None
    for _ in range(50):  # bounded: at most 10 s of dribbling
        try:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 0.2)
            break
        except TimeoutError:
            continue
        except ConnectionError:
            answer = b""
            break
    assert answer == b"", "the dribbled head was never cut" if answer is None else answer
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_too(app_client: AppClient) -> None:
    client: Client = await app_client(http_header_timeout_s=0.5)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    assert await closed_by_server(reader, timeout=10) == b""
    writer.close()


async def test_an_open_websocket_outlives_the_header_timeout(app_client: AppClient) -> None:
    client: Client = await app_client(http_header_timeout_s=0.3, heartbeat_s=30.0)
    reg = await register(client)
    sock = await connect(client, token=reg.access_token)
    await sock.hello()
    await past(time.time() + 1.0)  # well past the header timeout
    from protocol.pets import PetsMine
    assert (await sock.command(PetsMine(id="still-here"))) is not None


async def raw_post(client: Client, path: str, headers: str, first: bytes
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + first)
    await writer.drain()
    return reader, writer


async def test_a_stalled_json_body_is_408_and_the_connection_closed(app_client: AppClient
                                                                    ) -> None:
    client: Client = await app_client(http_body_timeout_s=0.5)
    reader, writer = await raw_post(client, "/api/v1/auth/login",
                                    "Content-Type: application/json\r\nContent-Length: 200\r\n",
                                    b'{"email": "a@example.com"')
    answer = await closed_by_server(reader, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"bad_request"' in answer and b"no data for 0.5 s" in answer
    writer.close()


async def test_a_stalled_upload_is_408(app_client: AppClient) -> None:
    client: Client = await app_client(http_body_timeout_s=0.5)
    reg = await register(client)
    head = (f"Authorization: Bearer {reg.access_token}\r\n"
            "Content-Type: multipart/form-data; boundary=b0und4ry\r\nContent-Length: 5000\r\n")
    reader, writer = await raw_post(client, "/api/v1/uploads", head,
                                    b'--b0und4ry\r\nContent-Disposition: form-data; '
                                    b'name="purpose"\r\n\r\npet_photo\r\n--b0und4ry\r\n')
    answer = await closed_by_server(reader, timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    writer.close()


async def test_a_slow_but_steady_body_is_not_cut(app_client: AppClient) -> None:
    client: Client = await app_client(http_body_timeout_s=0.5)
    body = b'{"email": "nobody@example.com", "password": "wrong password"}'
    reader, writer = await raw_post(
        client, "/api/v1/auth/login",
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n", b"")
    chunks = range(0, len(body), 8)
    assert len(chunks) * 0.1 > 0.5  # slower in total than the timeout, never silent for it
    for i in chunks:
        writer.write(body[i:i + 8])
        await writer.drain()
        await past(time.time() + 0.1)
    answer = await closed_by_server(reader, timeout=10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    writer.close()


# --- sockets awaiting hello, per address ----------------------------------------------------

async def test_pending_handshakes_per_address_are_capped(app_client: AppClient) -> None:
    client: Client = await app_client(ws_handshakes_per_address=3, trust_forwarded_for=True,
                                      hello_timeout_s=30.0)
    reg = await register(client)
    here = {"X-Forwarded-For": "203.0.113.9"}
    pending = [await connect(client, headers=here) for _ in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(client, headers=here)
    assert refused.value.status == 429
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
    # Another address is not affected.
    other = await connect(client, token=reg.access_token,
                          headers={"X-Forwarded-For": "198.51.100.3"})
    await other.hello()
    # Once one of them says hello, its place is free again.
    await pending[0].send_raw(f'{{"type": "hello", "token": "{reg.access_token}"}}')
    assert (await pending[0].receive()).wire_type() == "welcome"
    admitted: ProtocolSocket = await connect(client, token=reg.access_token, headers=here)
    await admitted.hello()
    # A pending socket that gives up frees its place as well.
    await pending[1].close()

    async def room() -> bool:
        try:
            sock = await connect(client, headers=here)
        except aiohttp.WSServerHandshakeError:
            return False
        await sock.close()
        return True

    from tests.support.waiting import until
    await until(room, timeout=10, what="the closed pending socket's place")


# --- no versions in the Server header --------------------------------------------------------

async def test_the_server_header_names_no_versions(app_client: AppClient) -> None:
    client: Client = await app_client()
    responses = [await client.get("/healthz"), await client.get("/no/such/route"),
                 await client.post("/api/v1/auth/login", data=b"x",
                                   headers={"Content-Type": "text/plain"})]
    for resp in responses:
        assert resp.headers["Server"] == "petspark", resp.headers.get("Server")
    ws = await client.ws_connect("/ws")
    await ws.close()
    # aiohttp's own answer to a request it cannot parse, before any route.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"NOT A REQUEST\r\n\r\n")
    answer = await closed_by_server(reader, timeout=10)
    writer.close()
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), answer[:100]
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"server: petspark" in head and b"aiohttp" not in head and b"python" not in head
