"""Idempotent creating commands, cross-node ephemeral events, kicks and presence."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from protocol.base import Empty
from protocol.chat import ChatTypingEvent
from protocol.codes import CloseCode
from server.domain.idempotency import run_idempotent
from server.errors import BadRequest
from server.realtime.presence import Presence
from server.realtime.stream import Transaction
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register
from tests.support.waiting import until
from tests.support.ws import open_session


async def _offline(presence: Presence, user_id: str) -> bool:
    return (await presence.online([user_id])) == {user_id: False}


async def test_same_key_returns_the_first_result_and_appends_once(
    app_client: AppClient,
) -> None:
    client = await app_client()
    user = await register(client)
    stream = client.app[RUNTIME].deps.stream
    runs = 0

    async def work(tx: Transaction) -> Empty:
        nonlocal runs
        runs += 1
        await tx.append([user.user_id], events.notification("created"))
        return Empty()

    results = await asyncio.gather(*(
        run_idempotent(stream, user_id=user.user_id, scope="test.create", key="k1",
                       result_type=Empty, work=work) for _ in range(5)))
    assert results == [Empty()] * 5 and runs == 1
    assert await stream.last_seq(user.user_id) == 1
    await run_idempotent(stream, user_id=user.user_id, scope="test.create", key="k2",
                         result_type=Empty, work=work)
    assert runs == 2


async def test_failed_attempt_does_not_burn_the_key(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    stream = client.app[RUNTIME].deps.stream

    async def failing(tx: Transaction) -> Empty:
        await tx.append([user.user_id], events.notification())
        raise BadRequest("body: nope")

    with pytest.raises(BadRequest):
        await run_idempotent(stream, user_id=user.user_id, scope="s", key="k",
                             result_type=Empty, work=failing)
    assert await stream.last_seq(user.user_id) == 0  # rolled back with the failure

    async def fine(tx: Transaction) -> Empty:
        return Empty()

    assert await run_idempotent(stream, user_id=user.user_id, scope="s", key="k",
                                result_type=Empty, work=fine) == Empty()


async def test_ephemeral_events_reach_every_node_and_are_not_stored(
    app_client: AppClient,
) -> None:
    node_a = await app_client()
    node_b = await app_client()
    user = await register(node_a)
    on_a = await open_session(node_a, user.access_token)
    on_b = await open_session(node_b, user.access_token)
    typing = ChatTypingEvent(conversation_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()))
    await node_a.app[RUNTIME].deps.node.send_ephemeral([user.user_id], typing)
    for sock in (on_a, on_b):
        event = await sock.expect("chat.typing")
        assert event == typing
    assert await node_a.app[RUNTIME].deps.stream.last_seq(user.user_id) == 0


async def test_kick_closes_sockets_on_every_node(app_client: AppClient) -> None:
    node_a = await app_client()
    node_b = await app_client()
    user = await register(node_a)
    on_b = await open_session(node_b, user.access_token)
    await node_a.app[RUNTIME].deps.node.kick(user_ids=(user.user_id,), code=CloseCode.FORBIDDEN,
                                             reason="test")
    await on_b.expect_close(CloseCode.FORBIDDEN, timeout=1)


@pytest.mark.parametrize("redis", [True, False])
async def test_presence_follows_sockets_across_nodes(app_client: AppClient, redis: bool) -> None:
    node_a = await app_client(redis=redis)
    node_b = await app_client(redis=redis) if redis else node_a
    user = await register(node_a)
    presence = node_a.app[RUNTIME].deps.presence
    assert await presence.online([user.user_id]) == {user.user_id: False}
    first = await open_session(node_a, user.access_token)
    second = await open_session(node_b, user.access_token)
    assert await presence.online([user.user_id]) == {user.user_id: True}
    hub_a = node_a.app[RUNTIME].deps.node.hub
    await first.close()
    await until(lambda: len(hub_a) == (0 if redis else 1), what="node A to drop the socket")
    assert await presence.online([user.user_id]) == {user.user_id: True}
    await second.close()
    await until(lambda: _offline(presence, user.user_id), what="the user to go offline")


async def test_killed_node_users_go_offline_within_the_ttl(app_client: AppClient) -> None:
    from server.realtime.presence import RedisPresence
    from server.resources.redis import create_redis
    from server.state import SETTINGS

    node = await app_client(heartbeat_s=0.2)
    user = await register(node)
    await open_session(node, user.access_token)
    # Another node's view of the same Redis, with the same TTL rule.
    settings = node.app[SETTINGS]
    assert settings.redis_url is not None
    client = create_redis(settings.redis_url)
    presence = RedisPresence(client, settings.redis_prefix, ttl_s=1.0)
    try:
        assert await presence.online([user.user_id]) == {user.user_id: True}
        # "Kill" the node: its sweeper stops refreshing, its sockets never say goodbye.
        from server.gateway.gateway import Gateway

        gateway = node.app[RUNTIME].gateway
        assert isinstance(gateway, Gateway)
        await gateway.sweeper.stop()
        await until(lambda: _offline(presence, user.user_id), timeout=3,
                    what="the entry to expire")
    finally:
        await client.aclose()
