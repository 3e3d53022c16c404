"""Redis restarted mid-test: delivery continues and nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.realtime.broker import RedisBroker
from server.state import RUNTIME
from tests.gateway.conftest import AppClient
from tests.realtime.test_delivery import seqs
from tests.support import events
from tests.support.auth import register
from tests.support.services import RedisProcess
from tests.support.waiting import until
from tests.support.ws import open_session


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.cleanup()


async def test_redis_restart_loses_nothing(app_client: AppClient,
                                           private_redis: RedisProcess) -> None:
    settings = {"redis_url": private_redis.url, "event_position_check_s": 0.3}
    node_a = await app_client(**settings)
    node_b = await app_client(**settings)
    user = await register(node_a)
    phone = await open_session(node_a, user.access_token)
    laptop = await open_session(node_b, user.access_token)
    await events.append(node_a.app, [user.user_id], 2)
    assert await seqs(laptop, 2) == [1, 2]
    assert await seqs(phone, 2) == [1, 2]

    private_redis.stop()
    await events.append(node_a.app, [user.user_id], 2)  # publishes fail: broker down
    brokers = [node.app[RUNTIME].deps.node.broker for node in (node_a, node_b)]
    assert all(isinstance(b, RedisBroker) for b in brokers)
    await until(lambda: not any(b.subscribed for b in brokers),  # type: ignore[attr-defined]
                what="both nodes to notice the outage")
    private_redis.start()
    await events.append(node_b.app, [user.user_id], 2)

    assert await seqs(laptop, 4, timeout=10) == [3, 4, 5, 6]
    assert await seqs(phone, 4, timeout=10) == [3, 4, 5, 6]
    await phone.expect_nothing()


async def test_sockets_still_open_while_redis_is_down(app_client: AppClient,
                                                      private_redis: RedisProcess) -> None:
    node = await app_client(redis_url=private_redis.url, event_position_check_s=0.3)
    user = await register(node)
    private_redis.stop()
    sock = await open_session(node, user.access_token)  # welcome despite no presence
    await events.append(node.app, [user.user_id], 1)  # notice lost: found by the check
    assert await seqs(sock, 1, timeout=5) == [1]
    private_redis.start()


async def test_routes_are_written_again_as_soon_as_redis_is_back(
        app_client: AppClient, private_redis: RedisProcess) -> None:
    """A restarted Redis is empty: each node routes its users again on resubscribing,
    not at its next route refresh (every 40 s here), so notices reach them live again."""
    node = await app_client(redis_url=private_redis.url, heartbeat_s=60,
                            event_position_check_s=60)
    user = await register(node)
    await open_session(node, user.access_token)
    realtime = node.app[RUNTIME].deps.node
    broker = realtime.broker
    assert isinstance(broker, RedisBroker)

    async def routed() -> bool:
        try:
            return user.user_id in (await realtime.routes.nodes([user.user_id])).get(
                realtime.node_id, [])
        except Exception:  # Redis still down
            return False

    assert await routed()
    private_redis.stop()
    await until(lambda: not broker.subscribed, what="the node to notice the outage")
    private_redis.start()
    assert not await routed()  # the new Redis knows no routes
    await until(lambda: broker.subscribed, timeout=10, what="the node to resubscribe")
    await until(routed, timeout=10, what="the route to be written again")
