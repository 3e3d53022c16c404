"""Scale-out routing on a Redis Cluster: a node hears only its own users' notices.

Four app nodes share PostgreSQL and the test Redis (presence, routes); their brokers use
sharded pub/sub on a private three-shard Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp.test_utils import TestClient

from protocol.chat import ChatTypingEvent
from protocol.codes import CloseCode
from server.realtime.broker import node_channel
from server.realtime.sharded_broker import ShardedRedisBroker
from server.resources.redis_cluster_process import RedisClusterProcess
from server.state import RUNTIME, SETTINGS
from tests.gateway.conftest import AppClient
from tests.realtime.test_delivery import seqs
from tests.scaleout.conftest import node_of, received
from tests.support import events
from tests.support.auth import register
from tests.support.waiting import until
from tests.support.ws import open_session


async def four(cluster_nodes: AppClient, **overrides: object) -> list[TestClient]:
    nodes = [await cluster_nodes(**overrides) for _ in range(4)]
    assert all(isinstance(node_of(n).broker, ShardedRedisBroker) for n in nodes)
    return nodes


def counts(nodes: list[TestClient]) -> list[float]:
    return [received(n) for n in nodes]


async def test_an_event_reaches_only_the_node_with_the_socket(cluster_nodes: AppClient
                                                              ) -> None:
    nodes = await four(cluster_nodes)
    user = await register(nodes[0])
    sock = await open_session(nodes[1], user.access_token)
    before = counts(nodes)
    await events.append(nodes[0].app, [user.user_id], 5)  # committed on node 1
    assert await seqs(sock, 5) == [1, 2, 3, 4, 5]
    after = counts(nodes)
    assert after[1] - before[1] >= 1
    assert [after[i] - before[i] for i in (0, 2, 3)] == [0, 0, 0]
    await sock.expect_nothing()


async def test_a_user_on_two_nodes_gets_it_on_both_and_nowhere_else(cluster_nodes: AppClient
                                                                    ) -> None:
    nodes = await four(cluster_nodes)
    user = await register(nodes[0])
    on_2 = await open_session(nodes[1], user.access_token)
    on_4 = await open_session(nodes[3], user.access_token)
    before = counts(nodes)
    await events.append(nodes[2].app, [user.user_id], 3)
    assert await seqs(on_2, 3) == [1, 2, 3]
    assert await seqs(on_4, 3) == [1, 2, 3]
    after = counts(nodes)
    assert [after[i] - before[i] for i in (0, 2)] == [0, 0]


async def test_one_commit_for_users_on_different_nodes_splits_by_node(
    cluster_nodes: AppClient,
) -> None:
    nodes = await four(cluster_nodes)
    alice, bob = await register(nodes[0]), await register(nodes[0])
    on_1 = await open_session(nodes[0], alice.access_token)
    on_3 = await open_session(nodes[2], bob.access_token)
    before = counts(nodes)
    await events.append(nodes[3].app, [alice.user_id, bob.user_id], 2)
    assert await seqs(on_1, 2) == [1, 2]
    assert await seqs(on_3, 2) == [1, 2]
    after = counts(nodes)
    assert [after[i] - before[i] for i in (1, 3)] == [0, 0]


async def test_a_user_moving_node_misses_nothing(cluster_nodes: AppClient) -> None:
    nodes = await four(cluster_nodes)
    user = await register(nodes[0])
    sock = await open_session(nodes[0], user.access_token)
    stop = asyncio.Event()

    async def writer() -> int:
        count = 0
        while not stop.is_set() and count < 200:
            await events.append(nodes[1].app, [user.user_id], 1)
            count += 1
            await asyncio.sleep(0)
        return count

    task = asyncio.create_task(writer())
    got = await seqs(sock, 3)
    last = got[-1]
    await sock.ws.close()  # off node 1 ...
    moved = await open_session(nodes[2], user.access_token, resume_from=last)  # ... onto 3
    assert moved.welcome is not None and moved.welcome.resumed is True
    more = await seqs(moved, 5)
    stop.set()
    total = await task
    rest = await seqs(moved, total - more[-1], timeout=10) if total > more[-1] else []
    assert got + more + rest == list(range(1, total + 1))
    await moved.expect_nothing()


async def test_ephemeral_events_and_kicks_are_routed_too(cluster_nodes: AppClient) -> None:
    nodes = await four(cluster_nodes)
    user = await register(nodes[0])
    sock = await open_session(nodes[1], user.access_token)
    before = counts(nodes)
    typing = ChatTypingEvent(conversation_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()))
    await node_of(nodes[0]).send_ephemeral([user.user_id], typing)
    assert await sock.expect("chat.typing") == typing
    await node_of(nodes[3]).kick(user_ids=(user.user_id,), code=CloseCode.FORBIDDEN,
                                 reason="test")
    await sock.expect_close(CloseCode.FORBIDDEN)
    after = counts(nodes)
    assert after[1] - before[1] >= 2
    assert [after[i] - before[i] for i in (0, 2, 3)] == [0, 0, 0]


async def test_a_dropped_notice_is_delivered_by_the_position_check(cluster_nodes: AppClient
                                                                  ) -> None:
    nodes = await four(cluster_nodes, event_position_check_s=0.3)
    user = await register(nodes[0])
    sock = await open_session(nodes[1], user.access_token)
    await events.append(nodes[0].app, [user.user_id], 1)
    assert await seqs(sock, 1) == [1]
    hub = node_of(nodes[1]).hub
    rounds = hub.position_rounds
    await until(lambda: hub.position_rounds > rounds + 1, what="incremental position rounds")
    # The route vanishes (as after a Redis flush): the publisher finds no node for the
    # user, so no notice goes out at all.
    redis = nodes[0].app[RUNTIME].deps.redis
    assert redis is not None
    await redis.delete(f"{nodes[0].app[SETTINGS].redis_prefix}route:{user.user_id}")
    before = received(nodes[1])
    await events.append(nodes[0].app, [user.user_id], 2)
    assert await seqs(sock, 2, timeout=5) == [2, 3]
    assert received(nodes[1]) == before  # it came from PostgreSQL, not the broker


async def test_rooms_work_on_shard_channels(cluster_nodes: AppClient) -> None:
    nodes = await four(cluster_nodes)
    room = f"room-{uuid.uuid4().hex[:8]}"
    members = []
    for i in (1, 2):
        user = await register(nodes[0])
        sock = await open_session(nodes[i], user.access_token)
        assert sock.welcome is not None
        joined = await node_of(nodes[i]).join_room(room, user.user_id, sock.welcome.session_id)
        assert joined == "joined"
        members.append(sock)
    before = received(nodes[3], "room")
    typing = ChatTypingEvent(conversation_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()))
    await node_of(nodes[0]).send_to_room(room, typing)
    for sock in members:
        assert await sock.expect("chat.typing") == typing
    assert received(nodes[3], "room") == before  # no member there: not subscribed


async def test_a_shard_restart_is_survived(cluster_nodes: AppClient,
                                           redis_cluster: RedisClusterProcess) -> None:
    settings = {"event_position_check_s": 0.3}
    sender, holder = await cluster_nodes(**settings), await cluster_nodes(**settings)
    user = await register(sender)
    sock = await open_session(holder, user.access_token)
    await events.append(sender.app, [user.user_id], 1)
    assert await seqs(sock, 1) == [1]
    broker = node_of(holder).broker
    assert isinstance(broker, ShardedRedisBroker)
    prefix = holder.app[SETTINGS].redis_prefix
    shard = redis_cluster.shard_of(node_channel(f"{prefix}bus", broker.node_id))
    redis_cluster.stop_shard(shard)
    try:
        await until(lambda: not broker.subscribed, what="the holder to lose its shard")
        await events.append(sender.app, [user.user_id], 2)  # notice lost: the check has it
        assert await seqs(sock, 2, timeout=10) == [2, 3]
    finally:
        redis_cluster.restart_shard(shard)
    await until(lambda: broker.subscribed, timeout=20, what="the subscription to come back")
    before = received(holder)
    await events.append(sender.app, [user.user_id], 2)
    assert await seqs(sock, 2, timeout=10) == [4, 5]
    assert received(holder) > before  # live again, through the broker
