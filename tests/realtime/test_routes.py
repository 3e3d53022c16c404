"""The user → nodes routes in Redis: written, removed, refreshed, and expiring."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from server.realtime.routing import RedisRoutes
from tests.support.waiting import until


async def test_routes_name_each_users_nodes_and_expire_without_refresh(
    redis_url: str, redis_prefix: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        routes = RedisRoutes(client, redis_prefix, ttl_s=0.5)
        alice, bob, carol = (str(uuid.uuid4()) for _ in range(3))
        await routes.add("n1", alice)
        await routes.add("n2", alice)
        await routes.add("n2", bob)
        found = await routes.nodes([alice, bob, carol])
        assert {k: sorted(v) for k, v in found.items()} == {
            "n1": [alice], "n2": sorted([alice, bob])}
        await routes.remove("n2", alice)
        assert await routes.nodes([alice]) == {"n1": [alice]}
        # n1 keeps refreshing alice; n2 "crashed" and never refreshes bob.
        async def only_alice_left() -> bool:
            await routes.refresh("n1", [alice])
            return await routes.nodes([alice, bob]) == {"n1": [alice]}
        await until(only_alice_left, what="the crashed node's route to expire", timeout=5)
    finally:
        await client.aclose()
