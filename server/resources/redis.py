"""The Redis client (only when REDIS_URL is set: the embedded default needs none)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from server.settings import parse_cluster_nodes

# Connections per node. redis-py's default pool refuses outright
# ("Too many connections") once 100 commands are in flight, which a burst of
# socket opens (presence) reaches easily; a blocking pool makes the burst wait.
MAX_CONNECTIONS = 100
POOL_WAIT_S = 5.0


def create_redis(url: str) -> aioredis.Redis:
    # decode_responses stays False: aiohttp-session's RedisStorage and our binary
    # pub/sub payloads want bytes.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=10,
        retry_on_timeout=True,
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # the client owns (closes) the pool
    return client


def create_redis_cluster(value: str) -> RedisCluster:
    """A Redis Cluster client from seed nodes (``REDIS_CLUSTER_NODES``)."""
    seeds = [ClusterNode(host, port) for host, port in parse_cluster_nodes(value)]
    return RedisCluster(startup_nodes=seeds, socket_connect_timeout=2, socket_timeout=5,
                        health_check_interval=10)
