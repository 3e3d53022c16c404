"""The Redis client (only when REDIS_URL is set: the embedded default needs none)."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str) -> aioredis.Redis:
    # decode_responses stays False: aiohttp-session's RedisStorage and our binary
    # pub/sub payloads want bytes.
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=10,
        retry_on_timeout=True,
    )
    return client
