"""Frame floods (issue #17 item 10): every inbound frame counts toward the socket's frame
budget, and a socket whose frames are mostly refused over WS_ABUSE_S is closed 4029.
Through real sockets; the budget's refusals are read from /metrics over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from protocol.codes import CloseCode
from protocol.pets import PetsMine
from protocol.session import Error, Ok
from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.metrics import scrape
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, open_session

FLOOD_FRAMES = 200_000
"""Upper bound of every flood loop (they also stop once the socket closes)."""

Sender = Callable[[ProtocolSocket, int], Awaitable[None]]


async def send_pong(sock: ProtocolSocket, i: int) -> None:
    await sock.send_raw('{"type": "pong"}')


async def send_ack(sock: ProtocolSocket, i: int) -> None:
    await sock.send_raw('{"type": "ack", "seq": 0}')


async def send_ws_ping(sock: ProtocolSocket, i: int) -> None:
    await sock.ws.ping()


async def send_garbage(sock: ProtocolSocket, i: int) -> None:
    await sock.send_raw("{not json")


async def flood(sock: ProtocolSocket, send: Sender, *, stop: asyncio.Event | None = None
                ) -> int:
    """Send frames until the socket closes, ``stop`` is set or FLOOD_FRAMES; how many."""
    sent = 0
    while sent < FLOOD_FRAMES and not sock.ws.closed and not (stop and stop.is_set()):
        try:
            await send(sock, sent)
        except ConnectionError:
            break
        sent += 1
        if sent % 100 == 0:
            await asyncio.sleep(0)  # the server shares this event loop
    return sent


async def user_session(client: TestClient) -> ProtocolSocket:
    user = await register(client)
    return await open_session(client, user.access_token)


async def refused(client: TestClient) -> float:
    return (await scrape(client)).value("petspark_ws_frames_refused_total")


@pytest.mark.parametrize("send", [send_pong, send_ack, send_ws_ping, send_garbage],
                         ids=["pong", "ack", "ws-ping", "garbage"])
async def test_a_flood_of_any_frame_is_closed_4029(app_client: AppClient, send: Sender) -> None:
    client = await app_client(ws_frames_per_s=50.0, ws_frames_burst=50, ws_abuse_s=0.3)
    sock = await user_session(client)
    sock.auto_pong = False
    flooding = asyncio.create_task(flood(sock, send))
    try:
        await sock.expect_close(CloseCode.RATE_LIMIT_ABUSE, timeout=10)
    finally:
        await flooding
    async def closed_4029() -> bool:  # recorded once the server's side has finished
        return (await scrape(client)).value("petspark_ws_closes_total", code="4029") == 1

    await until(closed_4029, what="the 4029 to be recorded")
    metrics = await scrape(client)
    assert metrics.value("petspark_ws_frames_refused_total", limit="frames") > 0


async def test_ws_pings_within_the_budget_are_answered(app_client: AppClient) -> None:
    client = await app_client()
    sock = await user_session(client)
    for _ in range(3):
        await sock.ws.ping(b"hi")
    # The reply to a command after the pings proves the socket kept serving; aiohttp's
    # client consumes the pongs, so count them on the server: no refusals.
    assert isinstance(await sock.request(PetsMine(id=sock.next_id())), Ok)
    metrics = await scrape(client)
    assert metrics.value("petspark_ws_frames_in_total", type="ws.ping") == 3
    assert metrics.value("petspark_ws_frames_refused_total") == 0


async def test_a_burst_just_under_the_budget_is_not_refused(app_client: AppClient) -> None:
    client = await app_client(ws_frames_per_s=1.0, ws_frames_burst=40, ws_abuse_s=0.2)
    sock = await user_session(client)
    for _ in range(38):  # the command below takes the 39th token
        await sock.send_raw('{"type": "pong"}')
    assert isinstance(await sock.request(PetsMine(id=sock.next_id())), Ok)
    assert await refused(client) == 0


async def test_a_burst_over_the_budget_then_quiet_is_not_closed(app_client: AppClient) -> None:
    # Fewer refusals than min(WS_FRAMES_PER_S, WS_RATE_PER_S) * WS_ABUSE_S (12) in a
    # window is never abuse.
    client = await app_client(ws_frames_per_s=40.0, ws_frames_burst=20, ws_abuse_s=0.3,
                              ws_rate_per_s=50.0)
    sock = await user_session(client)
    for _ in range(30):  # ~10 over the burst: dropped, which opens an abuse window
        await sock.send_raw('{"type": "pong"}')
    await until(lambda: refused(client), what="the burst's refusals")
    opened = time.monotonic()
    await until(lambda: time.monotonic() > opened + 0.4, what="the window to end")
    # Back under the budget after the window: served, not closed.
    for _ in range(3):
        assert isinstance(await sock.request(PetsMine(id=sock.next_id())), Ok)
    await sock.expect_nothing(within=0.2)


async def test_a_normal_client_with_heartbeats_is_never_limited(app_client: AppClient) -> None:
    client = await app_client(heartbeat_s=0.2, ws_frames_per_s=60.0, ws_frames_burst=20,
                              ws_rate_per_s=20.0, ws_rate_burst=10, ws_abuse_s=0.2)
    sock = await user_session(client)  # answers the server's pings (auto_pong)
    started = time.monotonic()
    commands = 0
    while time.monotonic() - started < 1.0 and commands < 200:  # ~10 commands/s + pongs
        assert isinstance(await sock.request(PetsMine(id=sock.next_id())), Ok)
        commands += 1
        await sock.send_raw('{"type": "ack", "seq": 0}')
        await until(lambda c=commands: time.monotonic() > started + c * 0.1,  # type: ignore[misc]
                    what="the next command's turn")
    metrics = await scrape(client)
    assert metrics.value("petspark_ws_frames_in_total", type="pong") > 0
    assert metrics.value("petspark_ws_frames_refused_total") == 0
    assert metrics.value("petspark_ws_closes_total") == 0


async def test_other_users_are_answered_during_a_flood(app_client: AppClient) -> None:
    client = await app_client(ws_frames_per_s=50.0, ws_frames_burst=50)  # WS_ABUSE_S 10 s
    flooder = await user_session(client)
    flooder.auto_pong = False
    other = await user_session(client)
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(flooder, send_pong, stop=stop))
    try:
        await until(lambda: refused(client), what="the flood to be refused")
        for _ in range(20):
            assert isinstance(await other.request(PetsMine(id=other.next_id())), Ok)
        assert not flooding.done()  # still flooding while the other user was served
    finally:
        stop.set()
        await flooding


async def test_a_command_over_the_frame_budget_is_answered_rate_limited(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_frames_per_s=0.5, ws_frames_burst=3)
    sock = await user_session(client)
    for _ in range(3):
        await sock.send_raw('{"type": "pong"}')
    # Over the budget: a pong is dropped without an answer, a command (good or bad) gets
    # its one reply, rate_limited with its id.
    await sock.send_raw('{"type": "pong"}')
    reply = await sock.request(PetsMine(id="over"))
    assert isinstance(reply, Error) and reply.code == "rate_limited", reply
    assert reply.message == "too many frames" and 0 < (reply.retry_after_s or 0) <= 2
    await sock.send_raw('{"type": "no.such", "id": "bad"}')
    bad = await sock.expect("error")
    assert (bad.id, bad.code) == ("bad", "rate_limited")
    await sock.send_raw('{"type": "pets.mine", "\\u0069d": "escaped"}')  # "id", escaped
    escaped = await sock.expect("error")
    assert (escaped.id, escaped.code) == ("escaped", "rate_limited")
    await sock.expect_nothing(within=0.2)
    assert (await scrape(client)).value("petspark_ws_frames_refused_total",
                                        limit="frames") == 4
