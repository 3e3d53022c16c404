"""The reference client against the real server: reconnect, resume, every event once."""

from __future__ import annotations

import asyncio

from client import Backoff, Client
from protocol.codes import CloseCode
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register


async def test_client_resumes_after_server_closes_and_loses_nothing(
    app_client: AppClient,
) -> None:
    node = await app_client()
    user = await register(node)
    url = str(node.make_url("/ws"))
    received: list[int] = []
    async with Client(url, token=user.access_token, backoff=Backoff(0.05, 0.2)) as c:
        stream = c.events()

        async def consume(count: int) -> None:
            while len(received) < count:
                event = await asyncio.wait_for(anext(stream), timeout=5)
                seq = getattr(event, "seq", None)
                if seq is not None:
                    received.append(seq)

        await events.append(node.app, [user.user_id], 3)
        await consume(3)
        # The server drops the socket (slow consumer), events keep being committed.
        await node.app[RUNTIME].deps.node.kick(user_ids=(user.user_id,),
                                               code=CloseCode.SLOW_CONSUMER, reason="test")
        await events.append(node.app, [user.user_id], 4)
        await consume(7)
        # And once more with 1001 (deploy): reconnect at once, resume.
        await node.app[RUNTIME].deps.node.kick(user_ids=(user.user_id,),
                                               code=CloseCode.GOING_AWAY, reason="test")
        await events.append(node.app, [user.user_id], 3)
        await consume(10)
        assert c.reconnects >= 2
    assert received == list(range(1, 11))


async def test_client_stops_after_ban(app_client: AppClient) -> None:
    from client import ConnectionClosed

    node = await app_client()
    user = await register(node)
    url = str(node.make_url("/ws"))
    async with Client(url, token=user.access_token, backoff=Backoff(0.05, 0.2)) as c:
        stream = c.events()
        await node.app[RUNTIME].auth.ban_user(user.user_id)
        try:
            await asyncio.wait_for(anext(stream), timeout=5)
            raise AssertionError("expected ConnectionClosed")
        except ConnectionClosed as exc:
            assert exc.code == CloseCode.FORBIDDEN
