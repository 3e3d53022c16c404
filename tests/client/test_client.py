"""The client against a real (scripted) WebSocket server on a loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from client import (
    Client,
    ClientState,
    CommandTimeout,
    ConnectionClosed,
    ConnectionLost,
    HandshakeRejected,
    NotFound,
    RateLimited,
    Resync,
)
from protocol import Ack, AuthRefresh, AuthRefreshResult, Error, ErrorCode, Ping, Pong
from protocol.chat import ChatMessageEvent, ChatSend, ChatTypingEvent, MessageResult
from protocol.objects import ChatMessage
from protocol.pets import PetsMine, PetsResult
from tests.client.conftest import MakeServer, RecordingRng
from tests.client.scripted_server import ServerConn, serve_forever, until

MakeClient = Callable[..., Client]
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def chat_message(n: int, client_msg_id: str = "k") -> ChatMessage:
    return ChatMessage(
        id=f"m{n}",
        conversation_id="c1",
        sender_id="u1",
        client_msg_id=client_msg_id,
        body=f"hello {n}",
        attachment_ids=[],
        created_at=T0,
    )


def event(seq: int) -> ChatMessageEvent:
    return ChatMessageEvent(seq=seq, message=chat_message(seq))


def send_cmd(key: str = "k1", body: str = "hi") -> ChatSend:
    return ChatSend(id="", conversation_id="c1", client_msg_id=key, body=body)


async def take(c: Client, n: int, within_s: float = 3.0) -> list[object]:
    out: list[object] = []
    async with asyncio.timeout(within_s):
        async for e in c.events():
            out.append(e)
            if len(out) == n:
                break
    return out


def seqs(events: list[object]) -> list[int]:
    return [e.seq for e in events if isinstance(e, ChatMessageEvent)]


# --------------------------------------------------------------------- commands


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_command_returns_the_typed_result(
    scripted: MakeServer, make_client: MakeClient, codec: str
) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome(last_seq=3)
        cmd = await conn.recv_command()
        assert isinstance(cmd, ChatSend) and cmd.body == "hi" and cmd.id
        await conn.reply(cmd, MessageResult(message=chat_message(1, cmd.client_msg_id)))

    srv = await scripted(script)
    async with make_client(srv.url, codec=codec) as c:
        assert c.welcome is not None and c.welcome.last_seq == 3
        result = await c.command(send_cmd(), MessageResult)
        assert isinstance(result, MessageResult)
        assert result.message.body == "hello 1" and result.message.created_at == T0
    conn = srv.conns[0]
    assert conn.codec.name == f"petspark.v1.{codec}"
    assert conn.wrong_frames == 0
    assert conn.headers["Authorization"] == "Bearer tok-1"
    assert conn.hello is not None and conn.hello.client == "petspark-py/0.1"
    assert conn.hello.resume_from is None and conn.hello.token is None
    await conn.wait_closed()
    assert conn.close_code == 1000
    assert c.state is ClientState.CLOSED


async def test_error_reply_raises_typed_command_error(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome()
        first = await conn.recv_command()
        await conn.send(Error(id=first.id, code=ErrorCode.NOT_FOUND, message="no such pet"))
        second = await conn.recv_command()
        await conn.send(
            Error(id=second.id, code=ErrorCode.RATE_LIMITED, message="slow", retry_after_s=2)
        )

    srv = await scripted(script)
    async with make_client(srv.url) as c:
        with pytest.raises(NotFound) as not_found:
            await c.command(PetsMine(id=""))
        assert not_found.value.code is ErrorCode.NOT_FOUND
        assert not_found.value.message == "no such pet"
        with pytest.raises(RateLimited) as limited:
            await c.command(PetsMine(id=c.new_id()))
        assert limited.value.retry_after_s == 2
        assert c.state is ClientState.OPEN  # an error ends the command, not the connection


async def test_unanswered_command_times_out(scripted: MakeServer, make_client: MakeClient) -> None:
    srv = await scripted(serve_forever)
    async with make_client(srv.url, command_timeout_s=600.0) as c:
        with pytest.raises(CommandTimeout):
            async with asyncio.timeout(30):  # hangs only if timeout_s were ignored
                await c.command(PetsMine(id=""), timeout_s=0.2)


# --------------------------------------------------------------------- events, resume, acks


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_events_in_order_and_duplicates_dropped_after_resume(
    scripted: MakeServer, make_client: MakeClient, codec: str
) -> None:
    consumed_two = asyncio.Event()

    async def first(conn: ServerConn) -> None:
        await conn.welcome(last_seq=0)
        for seq in (1, 2, 3):
            await conn.send(event(seq))
        await conn.send(ChatTypingEvent(conversation_id="c1", user_id="u2"))
        await consumed_two.wait()
        await conn.close(4008, "slow consumer")

    async def second(conn: ServerConn) -> None:
        await conn.welcome(last_seq=4, resumed=True)
        for seq in (2, 3, 4):  # replay after resume_from=2; 3 is still queued client-side
            await conn.send(event(seq))

    srv = await scripted(first, second)
    async with make_client(srv.url, codec=codec) as c:
        got = await take(c, 2)
        assert seqs(got) == [1, 2] and c.last_seq == 2
        await until(lambda: 2 in srv.conns[0].acks)
        consumed_two.set()
        again = await srv.connection(1)  # reconnected while 3 is still queued
        got += await take(c, 3)
        assert seqs(got) == [1, 2, 3, 4]
        assert isinstance(got[3], ChatTypingEvent)
        assert c.last_seq == 4
        assert c.reconnects == 1
        assert again.hello is not None and again.hello.resume_from == 2
        await until(lambda: 4 in again.acks)
    assert srv.conns[0].acks[-1] == 2
    assert all(a <= b for a, b in zip(again.acks, again.acks[1:], strict=False))


async def test_acks_are_batched(scripted: MakeServer, make_client: MakeClient) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome()
        for seq in range(1, 51):
            await conn.send(event(seq))

    srv = await scripted(script)
    async with make_client(srv.url, ack_interval_s=0.2) as c:
        await take(c, 50)
        conn = srv.conns[0]
        await until(lambda: 50 in conn.acks)
    assert len(conn.acks) <= 3  # 50 events handed out quickly → a couple of acks
    assert conn.acks[-1] == 50


async def test_initial_resume_from_and_resync_when_not_resumed(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome(last_seq=90, resumed=False)
        await conn.send(event(91))

    srv = await scripted(script)
    async with make_client(srv.url, resume_from=5) as c:
        got = await take(c, 2)
        assert got[0] == Resync(resume_from=5, last_seq=90)
        assert seqs(got) == [91] and c.last_seq == 91
    assert srv.conns[0].hello is not None and srv.conns[0].hello.resume_from == 5


async def test_no_state_starts_after_last_seq_and_resumes_from_it(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def first(conn: ServerConn) -> None:
        await conn.welcome(last_seq=40)
        await conn.close(4002)

    srv = await scripted(first, lambda conn: conn.welcome(last_seq=40, resumed=True))
    async with make_client(srv.url) as c:
        second = await srv.connection(1)
        assert second.hello is not None and second.hello.resume_from == 40
        assert c.last_seq == 40


# --------------------------------------------------------------------- close codes


@pytest.mark.parametrize("code", [4001, 4003, 4000, 1009])
async def test_no_reconnect_after_fatal_codes(
    scripted: MakeServer, make_client: MakeClient, code: int
) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.recv_command()
        await conn.close(code, "bye")

    srv = await scripted(script)
    c = make_client(srv.url)
    await c.connect()
    with pytest.raises(ConnectionClosed) as pending:
        await c.command(PetsMine(id=""))
    assert pending.value.code == code
    with pytest.raises(ConnectionClosed) as in_events:
        await take(c, 1)
    assert in_events.value.code == code and in_events.value.reason == "bye"
    with pytest.raises(ConnectionClosed):
        await c.command(PetsMine(id=""))
    await asyncio.sleep(0.1)
    assert len(srv.conns) == 1 and c.state is ClientState.CLOSED


async def test_4001_before_welcome_raises_from_connect(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    srv = await scripted(lambda conn: conn.close(4001, "invalid token"))
    with pytest.raises(ConnectionClosed) as closed:
        async with make_client(srv.url):
            pass
    assert closed.value.code == 4001


async def test_4001_retries_once_with_a_token_from_the_provider(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    tokens = iter(["tok-2", "tok-3", "tok-4"])

    async def provider() -> str:
        return next(tokens)

    async def reject(conn: ServerConn) -> None:
        await conn.close(4001)

    srv = await scripted(reject, serve_forever)
    async with make_client(srv.url, token_provider=provider) as c:
        assert srv.conns[1].headers["Authorization"] == "Bearer tok-2"
        assert c.state is ClientState.OPEN

    srv = await scripted(reject)  # every attempt rejected: one retry, then stop
    with pytest.raises(ConnectionClosed) as closed:
        async with make_client(srv.url, token_provider=provider):
            pass
    assert closed.value.code == 4001 and len(srv.conns) == 2


async def test_4009_gets_a_new_token_then_reconnects(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"fresh-{calls}"

    async def expire(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.close(4009, "token expired")

    srv = await scripted(expire, serve_forever)
    async with make_client(srv.url, token_provider=provider) as c:
        second = await srv.connection(1)
        assert second.headers["Authorization"] == "Bearer fresh-1"
        assert calls == 1
        await until(lambda: c.reconnects >= 1)


async def test_1001_reconnects_at_once_without_backoff(
    scripted: MakeServer, make_client: MakeClient, rng: RecordingRng
) -> None:
    async def going_away(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.close(1001, "deploy")

    srv = await scripted(going_away, serve_forever)
    async with make_client(srv.url) as c:
        await srv.connection(1)
        assert rng.calls == []  # no backoff delay was drawn
        assert c.last_close is not None and c.last_close.code == 1001


async def test_backoff_grows_while_failing_and_resets_after_welcome(
    scripted: MakeServer, make_client: MakeClient, rng: RecordingRng
) -> None:
    async def script(conn: ServerConn) -> None:
        n = len(conn_numbers)
        conn_numbers.append(n)
        if n < 4:
            await conn.close(4029)  # before welcome: failed attempts 0..3
        elif n == 4:
            await conn.welcome()
            await conn.close(4002)  # after a welcome: the counter starts again
        else:
            await conn.welcome()

    conn_numbers: list[int] = []
    srv = await scripted(script)
    async with make_client(srv.url) as c:
        await srv.connection(5)
        await until(lambda: c.reconnects >= 1)
        assert [b for _, b in rng.calls] == [0.5, 1.0, 2.0, 4.0, 0.5]
        assert all(a == 0 for a, _ in rng.calls)
        assert c.reconnects == 1


async def test_network_failures_back_off_and_max_attempts_gives_up(
    make_client: MakeClient, rng: RecordingRng, unused_tcp_port: int
) -> None:
    c = make_client(f"ws://127.0.0.1:{unused_tcp_port}/ws", max_attempts=3)
    with pytest.raises(ConnectionClosed) as closed:
        await c.connect()
    assert closed.value.code == 1006
    assert [b for _, b in rng.calls] == [0.5, 1.0, 2.0]


# --------------------------------------------------------------------- heartbeat


async def test_pong_for_every_ping(scripted: MakeServer, make_client: MakeClient) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome()
        for _ in range(3):
            await conn.send(Ping())
            assert isinstance(await conn.recv(), Pong)

    srv = await scripted(script)
    async with make_client(srv.url):
        await until(lambda: srv.conns[0].pongs >= 3)


async def test_watchdog_reconnects_when_the_server_goes_silent(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def silent(conn: ServerConn) -> None:
        await conn.welcome(heartbeat_s=0.1)  # then nothing at all

    async def chatty(conn: ServerConn) -> None:
        await conn.welcome(heartbeat_s=0.1)
        while not conn.closed.is_set():
            await conn.send(Ping())
            await asyncio.sleep(0.05)

    srv = await scripted(silent, chatty)
    started = time.monotonic()
    async with make_client(srv.url) as c:
        await srv.connection(1)
        assert time.monotonic() - started > 0.15  # not before 2 x heartbeat_s of silence
        await until(lambda: srv.conns[1].pongs >= 10, within_s=10)  # 0.5 s of pings: alive
        assert len(srv.conns) == 2 and c.reconnects == 1
    await srv.conns[0].wait_closed()


# --------------------------------------------------------------------- resend


async def test_unanswered_idempotent_command_is_resent_and_answered_once(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def drop(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.recv_command()
        await conn.recv_command()
        await conn.close(4008)

    async def answer(conn: ServerConn) -> None:
        await conn.welcome(resumed=True)
        cmd = await conn.recv_command()
        assert isinstance(cmd, ChatSend)
        await conn.reply(cmd, MessageResult(message=chat_message(7, cmd.client_msg_id)))
        await conn.reply(cmd, MessageResult(message=chat_message(8, cmd.client_msg_id)))

    srv = await scripted(drop, answer)
    async with make_client(srv.url) as c:
        keyed = asyncio.create_task(c.command(send_cmd(key="uuid-1")))
        await until(lambda: any(isinstance(m, ChatSend) for m in srv.conns[0].received))
        plain = asyncio.create_task(c.command(PetsMine(id="")))
        result = await keyed
        assert isinstance(result, MessageResult) and result.message.id == "m7"
        with pytest.raises(ConnectionLost):
            await plain
        first, second = srv.conns
        sent_first = [m for m in first.received if isinstance(m, (ChatSend, PetsMine))]
        sent_second = [m for m in second.received if isinstance(m, (ChatSend, PetsMine))]
        assert [type(m) for m in sent_first] == [ChatSend, PetsMine]
        assert sent_second == [sent_first[0]]  # same id, same key; the plain one not resent


async def test_command_issued_while_disconnected_waits_for_the_connection(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    release = asyncio.Event()

    async def going_away(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.close(4029)

    async def slow(conn: ServerConn) -> None:
        await release.wait()
        await conn.welcome()
        cmd = await conn.recv_command()
        await conn.reply(cmd, PetsResult(pets=[]))

    srv = await scripted(going_away, slow)
    async with make_client(srv.url) as c:
        await srv.connection(1)
        assert c.state is ClientState.CONNECTING
        task = asyncio.create_task(c.command(PetsMine(id="")))
        await until(lambda: len(c._pending) == 1)  # issued, waiting for a connection
        release.set()
        assert await task == PetsResult(pets=[])


# --------------------------------------------------------------------- credentials


async def test_token_in_hello(scripted: MakeServer, make_client: MakeClient) -> None:
    srv = await scripted(serve_forever)
    async with make_client(srv.url, token="tok-h", auth="hello"):
        conn = srv.conns[0]
        assert conn.hello is not None and conn.hello.token == "tok-h"
        assert "Authorization" not in conn.headers


async def test_cookie_auth_sends_cookie_and_origin(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    srv = await scripted(serve_forever)
    async with make_client(
        srv.url,
        token=None,
        cookies={"petspark_session": "abc"},
        origin="http://localhost:3000",
        headers={"X-Trace": "t1"},
    ):
        conn = srv.conns[0]
        assert "petspark_session=abc" in conn.headers["Cookie"]
        assert conn.headers["Origin"] == "http://localhost:3000"
        assert conn.headers["X-Trace"] == "t1"
        assert "Authorization" not in conn.headers


async def test_refresh_token_in_band_and_on_reconnect(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def first(conn: ServerConn) -> None:
        await conn.welcome()
        cmd = await conn.recv_command()
        assert isinstance(cmd, AuthRefresh) and cmd.token == "tok-new"
        await conn.reply(cmd, AuthRefreshResult(expires_at=T0))
        await conn.close(4002)

    srv = await scripted(first, serve_forever)
    async with make_client(srv.url) as c:
        result = await c.refresh_token("tok-new")
        assert result.expires_at == T0
        second = await srv.connection(1)
        assert second.headers["Authorization"] == "Bearer tok-new"


async def test_close_sends_pending_ack_and_1000(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.welcome()
        await conn.send(event(1))

    srv = await scripted(script)
    c = make_client(srv.url, ack_interval_s=10.0)
    await c.connect()
    await take(c, 1)
    await c.close()
    await c.close()  # idempotent
    conn = srv.conns[0]
    await conn.wait_closed()
    assert conn.close_code == 1000 and conn.acks == [1]
    assert [m for m in conn.received if isinstance(m, Ack)] == [Ack(seq=1)]
    async with asyncio.timeout(1):
        assert [e async for e in c.events()] == []  # ends after close()


async def test_refused_upgrade_is_not_retried(
    aiohttp_server: Any, make_client: MakeClient, rng: RecordingRng
) -> None:
    attempts = 0

    async def refuse(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=403, text="origin not allowed")

    app = web.Application()
    app.router.add_get("/ws", refuse)
    server = await aiohttp_server(app)
    c = make_client(str(server.make_url("/ws")), token=None, origin="http://evil.example")
    with pytest.raises(HandshakeRejected) as rejected:
        await c.connect()
    assert rejected.value.status == 403 and rejected.value.code == 4003
    assert attempts == 1 and rng.calls == []


async def test_token_provider_used_first_when_no_token_and_its_failure_stops(
    scripted: MakeServer, make_client: MakeClient
) -> None:
    async def provider() -> str:
        return "from-provider"

    srv = await scripted(serve_forever)
    async with make_client(srv.url, token=None, token_provider=provider):
        assert srv.conns[0].headers["Authorization"] == "Bearer from-provider"

    async def broken() -> str:
        raise RuntimeError("refresh token revoked")

    with pytest.raises(ConnectionClosed) as closed:
        async with make_client(srv.url, token=None, token_provider=broken):
            pass
    assert closed.value.code == 4001 and "revoked" in closed.value.reason


async def test_repeated_1001_before_welcome_falls_back_to_backoff(
    scripted: MakeServer, make_client: MakeClient, rng: RecordingRng
) -> None:
    async def draining(conn: ServerConn) -> None:
        if len(srv.conns) == 1:
            await conn.welcome()
        elif len(srv.conns) < 4:
            await conn.close(1001, "draining")  # refuses new sockets while it drains
            return
        else:
            await conn.welcome()
            return
        await conn.close(1001, "deploy")

    srv = await scripted(draining)
    async with make_client(srv.url) as c:
        await until(lambda: c.reconnects >= 1)
        # conn 0 → 1 at once; 1 → 2 and 2 → 3 with backoff (n = 0, 1); 3 welcomes.
        assert [b for _, b in rng.calls] == [0.5, 1.0]
