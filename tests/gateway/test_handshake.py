"""Handshake and authentication (PROTOCOL §2, §3)."""

from __future__ import annotations

from datetime import datetime

import aiohttp

from protocol.codec import MSGPACK
from protocol.codes import CloseCode
from protocol.session import Hello
from server.state import RUNTIME
from tests.conftest import TEST_ORIGIN
from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.waiting import next_millisecond
from tests.support.ws import connect, open_session


async def test_bearer_hello_welcome_has_every_field(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await connect(client, token=user.access_token)
    welcome = await sock.hello(client="petspark-test/1.0")
    assert welcome.user_id == user.user_id
    assert welcome.last_seq == 0 and welcome.resumed is False
    assert welcome.heartbeat_s == 25.0
    assert isinstance(welcome.server_time, datetime) and welcome.server_time.tzinfo
    other = await open_session(client, user.access_token)
    assert other.welcome is not None and other.welcome.session_id != welcome.session_id


async def test_hello_token_authenticates(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await connect(client)
    welcome = await sock.hello(token=user.access_token)
    assert welcome.user_id == user.user_id


async def test_no_credential_closes_4001(app_client: AppClient) -> None:
    client = await app_client()
    sock = await connect(client)
    await sock.send(Hello())
    await sock.expect_close(CloseCode.NOT_AUTHENTICATED)


async def test_invalid_bearer_closes_4001_after_upgrade(app_client: AppClient) -> None:
    client = await app_client()
    sock = await connect(client, token="not-a-token")
    await sock.expect_close(CloseCode.NOT_AUTHENTICATED)


async def test_invalid_hello_token_closes_4001(app_client: AppClient) -> None:
    client = await app_client()
    sock = await connect(client)
    await sock.send(Hello(token="garbage"))
    await sock.expect_close(CloseCode.NOT_AUTHENTICATED)


async def test_hello_timeout_closes_4001(app_client: AppClient) -> None:
    client = await app_client(hello_timeout_s=0.2)
    user = await register(client)
    sock = await connect(client, token=user.access_token)
    await sock.expect_close(CloseCode.NOT_AUTHENTICATED, timeout=3)


async def test_anything_before_hello_closes_4000(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await connect(client, token=user.access_token)
    await sock.send_raw('{"type": "pets.mine", "id": "x"}')
    await sock.expect_close(CloseCode.PROTOCOL_VIOLATION)
    sock = await connect(client, token=user.access_token)
    await sock.send_raw("not json")
    await sock.expect_close(CloseCode.PROTOCOL_VIOLATION)


async def test_second_hello_is_bad_request(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await sock.send(Hello())
    error = await sock.expect("error")
    assert error.code == "bad_request" and error.id is None


async def test_cookie_auth_needs_an_allowed_origin(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    cookie = "; ".join(f"{k}={v}" for k, v in user.cookies.items())
    try:
        await client.ws_connect("/ws", headers={"Cookie": cookie,
                                                "Origin": "https://evil.example"})
        raise AssertionError("upgrade should have been refused")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403
    try:
        await client.ws_connect("/ws", headers={"Cookie": cookie})
        raise AssertionError("upgrade without Origin should have been refused")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403
    sock = await connect(client, headers={"Cookie": cookie, "Origin": TEST_ORIGIN})
    welcome = await sock.hello()
    assert welcome.user_id == user.user_id


async def test_banned_user_closes_4003(app_client: AppClient) -> None:

    client = await app_client()
    user = await register(client)
    await client.app[RUNTIME].auth.ban_user(user.user_id)
    sock = await connect(client, token=user.access_token)
    await sock.expect_close(CloseCode.FORBIDDEN)


async def test_revoked_session_is_refused_and_live_socket_closed(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    live = await open_session(client, user.access_token)
    resp = await client.post("/api/v1/auth/logout",
                             headers={"Authorization": f"Bearer {user.access_token}"})
    assert resp.status == 204
    # 4001, not 4003: the account is fine, this login is over (get new credentials).
    await live.expect_close(CloseCode.NOT_AUTHENTICATED, timeout=1.0)
    sock = await connect(client, token=user.access_token)
    await sock.expect_close(CloseCode.NOT_AUTHENTICATED)


async def test_ban_closes_live_socket_within_a_second(app_client: AppClient) -> None:

    client = await app_client()
    user = await register(client)
    live = await open_session(client, user.access_token)
    await client.app[RUNTIME].auth.ban_user(user.user_id)
    await live.expect_close(CloseCode.FORBIDDEN, timeout=1.0)


async def test_msgpack_subprotocol(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await connect(client, token=user.access_token, codec=MSGPACK.name)
    assert sock.ws.protocol == MSGPACK.name
    welcome = await sock.hello()
    assert welcome.user_id == user.user_id


async def test_unknown_subprotocol_falls_back_to_json(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    ws = await client.ws_connect("/ws", protocols=("petspark.v9",),
                                 headers={"Authorization": f"Bearer {user.access_token}"})
    assert ws.protocol is None
    await ws.send_str('{"type": "hello"}')
    msg = await ws.receive_json(timeout=5)
    assert msg["type"] == "welcome"


async def test_plain_get_is_not_an_upgrade(app_client: AppClient) -> None:
    client = await app_client()
    resp = await client.get("/ws")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


async def test_connection_cap_closes_the_oldest(app_client: AppClient) -> None:
    client = await app_client(ws_max_connections_per_user=2)
    user = await register(client)
    first = await open_session(client, user.access_token)
    await next_millisecond()
    second = await open_session(client, user.access_token)
    await next_millisecond()
    third = await open_session(client, user.access_token)
    await first.expect_close(CloseCode.REPLACED, timeout=2)
    await second.expect_nothing(0.2)
    await third.expect_nothing(0.05)
