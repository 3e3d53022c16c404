"""Issue #19 item 4 benchmark: per-node received broker traffic as nodes are added.

    python3 dev.py bench scaleout      # ~1 min, prints figures and a ratio

- A private three-shard Redis Cluster on loopback (``redis-server --cluster-enabled``);
  the servers' brokers use sharded pub/sub on it (``REDIS_CLUSTER_NODES``), everything
  else stays on the bench Redis. No redis-server binary: a single Redis broker instead
  (said in the output).
- Four ``python -m server`` nodes on one throwaway database. Phase N (1, 2, 4) uses the
  first N nodes: each holds USERS_PER_NODE users with one socket each, and a sender node
  in this process (the server's ``Node``: EventStream + routes + broker, exactly what
  another server does) commits RATE_PER_NODE durable events per second per active node,
  each to one of that node's users, for PHASE_S seconds.
- Each node's ``petspark_broker_received_{bytes,messages}_total{channel="bus"}`` (its
  /metrics) is read before and after the phase: received bytes/s and messages/s per node.
  With routing it stays flat per node as nodes are added; one shared channel (the old
  behaviour) would make every node receive every node's traffic, i.e. grow with N.
- Baselines, same run: the 1-node figure (the 4-node per-node mean over it: 1.00 =
  flat), and the old shared-channel behaviour at 4 nodes — the sender publishes every
  notice on the all-node channel (``SharedChannel``), which every node still subscribes
  to, so each node receives every node's notices, as before routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    bench_redis,
    bounded_gather,
    machine,
    petspark_server,
    register_users,
    temp_dir,
    throwaway_database,
)
from server.resources.dev_services import delete_prefix

NODES = 4
PHASES = (1, 2, 4)
USERS_PER_NODE = 30
RATE_PER_NODE = 25.0  # durable events per second per active node
PHASE_S = 5.0
SUBPROTOCOL = "petspark.v1.json"
SAMPLE = re.compile(r'^petspark_broker_received_(bytes|messages)_total\{channel="bus"\} (\S+)$',
                    re.M)


async def received(session: aiohttp.ClientSession, node: ServerProcess) -> tuple[float, float]:
    """(bytes, messages) this node's broker handed to its hub so far."""
    async with session.get(node.base + "/metrics") as resp:
        text = await resp.text()
    values = {kind: float(v) for kind, v in SAMPLE.findall(text)}
    return values.get("bytes", 0.0), values.get("messages", 0.0)


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith('{"type":"ping"'):
            await ws.send_str('{"type":"pong"}')


async def open_socket(session: aiohttp.ClientSession, url: str, token: str
                      ) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, protocols=(SUBPROTOCOL,),
                                  headers={"Authorization": f"Bearer {token}"})
    await ws.send_str('{"type":"hello","client":"bench/1"}')
    msg = await ws.receive(timeout=30)
    if msg.type != aiohttp.WSMsgType.TEXT or '"type":"welcome"' not in msg.data:
        raise RuntimeError(f"no welcome: {msg}")
    return ws


def notification() -> object:
    from protocol.notifications import NotificationEvent
    from protocol.objects import Notification

    return NotificationEvent(seq=0, notification=Notification(
        id=str(uuid.uuid4()), kind="bench", title="bench scale-out", body="", data={},
        created_at=datetime.now(UTC)))


async def phase(count: int, nodes: list[ServerProcess], users: list[tuple[str, str]],
                stream: object) -> list[tuple[float, float]]:
    """Run the load on the first ``count`` nodes; (bytes/s, messages/s) of each."""
    active = nodes[:count]
    by_node = [users[i * USERS_PER_NODE:(i + 1) * USERS_PER_NODE] for i in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = await bounded_gather(50, [
            lambda n=n, t=t: open_socket(session, nodes[n].ws_url, t)  # type: ignore[misc]
            for n, group in enumerate(by_node) for _, t in group])
        readers = [asyncio.create_task(drain(ws)) for ws in sockets]
        await asyncio.sleep(0.5)  # let the socket opens' own traffic settle
        before = [await received(session, n) for n in active]
        started = time.monotonic()
        sent = 0
        total = int(PHASE_S * RATE_PER_NODE * count)
        interval = 1.0 / (RATE_PER_NODE * count)
        while sent < total and time.monotonic() - started < PHASE_S * 3:
            group = by_node[sent % count]
            user_id = group[(sent // count) % len(group)][0]
            async with stream.transaction() as tx:  # type: ignore[attr-defined]
                await tx.append([user_id], notification())
            sent += 1
            lag = started + sent * interval - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)  # the last notices in flight
        after = [await received(session, n) for n in active]
        await bounded_gather(100, [ws.close for ws in sockets])
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    if sent < total:
        print(f"  (sender fell behind: {sent}/{total} events in {elapsed:.1f}s)")
    return [((a[0] - b[0]) / elapsed, (a[1] - b[1]) / elapsed)
            for a, b in zip(after, before, strict=True)]


class SharedChannel:
    """The sender's broker as before routing: every notice to every node."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.node_id: str = inner.node_id  # type: ignore[attr-defined]

    async def publish_to(self, messages: list[tuple[str, bytes]]) -> None:
        for _, payload in messages:
            await self.inner.publish(payload)  # type: ignore[attr-defined]


async def bench(admin_dsn: str, redis_url: str, cluster_nodes: str | None) -> None:
    import asyncpg

    from server.observability.metrics import Metrics
    from server.realtime.broker import Broker, RedisBroker, new_node_id
    from server.realtime.node import Node
    from server.realtime.presence import MemoryPresence
    from server.realtime.routing import RedisRoutes
    from server.realtime.sharded_broker import ShardedRedisBroker
    from server.resources.redis import create_redis, create_redis_cluster
    from server.settings import Settings

    prefix = f"petspark-bench-{secrets.token_hex(4)}:"
    print(f"scale-out bench — {machine()}")
    where = (f"Redis Cluster (3 shards, sharded pub/sub) {cluster_nodes}" if cluster_nodes
             else "single Redis (no Redis Cluster could be started)")
    print(f"  broker: {where}")
    print(f"  {USERS_PER_NODE} users (one socket each) per active node; {RATE_PER_NODE:g} "
          f"durable events/s per active node, each to one of its users; {PHASE_S:g} s a phase")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")
    extra = {"REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
             "SECRET_KEY": "bench-" + secrets.token_hex(24)}
    if cluster_nodes:
        extra["REDIS_CLUSTER_NODES"] = cluster_nodes
    results: dict[int, list[tuple[float, float]]] = {}
    async with throwaway_database(admin_dsn) as dsn, contextlib.AsyncExitStack() as stack:
        paths = [stack.enter_context(temp_dir()) for _ in range(NODES)]
        nodes = [petspark_server(dsn, paths[i], f"node {i + 1}", **extra) for i in range(NODES)]
        redis = create_redis(redis_url)
        cluster = create_redis_cluster(cluster_nodes) if cluster_nodes else None
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            await nodes[0].start()  # migrations first
            await asyncio.gather(*(n.start() for n in nodes[1:]))
            users = await register_users(nodes[0].base, NODES * USERS_PER_NODE)
            broker: Broker = (ShardedRedisBroker(cluster, f"{prefix}bus", new_node_id())
                              if cluster is not None
                              else RedisBroker(redis, f"{prefix}bus", new_node_id()))
            sender = Node(db=pool, broker=broker, presence=MemoryPresence(),
                          settings=Settings(), metrics=Metrics(),
                          routes=RedisRoutes(redis, prefix, ttl_s=60.0))
            for count in PHASES:
                results[count] = await phase(count, nodes, users, sender.stream)
                show(f"{count} node(s), routed", results[count])
            shared = Node(db=pool, broker=SharedChannel(broker),  # type: ignore[arg-type]
                          presence=MemoryPresence(), settings=Settings(), metrics=Metrics(),
                          routes=RedisRoutes(redis, prefix, ttl_s=60.0))
            results[0] = await phase(NODES, nodes, users, shared.stream)
            show(f"{NODES} node(s), one shared channel (old behaviour)", results[0])
        finally:
            for n in nodes:
                n.stop()
            await pool.close()
            if cluster is not None:
                await cluster.aclose()
            await redis.aclose()
            delete_prefix(redis_url, prefix)
    base_bytes, base_msgs = results[1][0]
    four = results[4]
    mean_bytes = sum(b for b, _ in four) / len(four)
    mean_msgs = sum(m for _, m in four) / len(four)
    print(f"  baseline (1 node): {base_bytes / 1024:.1f} KiB/s, {base_msgs:.1f} msg/s received")
    print(f"  4 nodes, per-node mean: {mean_bytes / 1024:.1f} KiB/s, {mean_msgs:.1f} msg/s -> "
          f"ratio to baseline {mean_bytes / base_bytes if base_bytes else float('nan'):.2f} "
          f"(bytes), {mean_msgs / base_msgs if base_msgs else float('nan'):.2f} (messages); "
          "flat = 1.00")
    old_bytes = sum(b for b, _ in results[0]) / len(results[0])
    print(f"  4 nodes, routed vs one shared channel: {mean_bytes / 1024:.1f} vs "
          f"{old_bytes / 1024:.1f} KiB/s per node -> ratio "
          f"{mean_bytes / old_bytes if old_bytes else float('nan'):.2f}")


def show(name: str, per: list[tuple[float, float]]) -> None:
    print(f"  {name}: " + "; ".join(f"node {i + 1} {b / 1024:.1f} KiB/s {m:.1f} msg/s"
                                   for i, (b, m) in enumerate(per)))


def main() -> None:
    from server.resources.redis_cluster_process import RedisClusterProcess, redis_server_binary

    cluster: RedisClusterProcess | None = None
    if redis_server_binary() is not None:
        try:
            cluster = RedisClusterProcess()
            cluster.start()
        except RuntimeError as exc:
            print(f"  no Redis Cluster ({exc}); falling back to a single Redis broker")
            cluster = None
    try:
        with bench_postgres() as admin_dsn, bench_redis() as redis_url:
            asyncio.run(asyncio.wait_for(
                bench(admin_dsn, redis_url, cluster.nodes if cluster else None), 150))
    finally:
        if cluster is not None:
            cluster.cleanup()


if __name__ == "__main__":
    main()
