"""RedisPresence.online against the real Redis: answers past one script call's chunk,
lookups made at once share a batch and each gets its own users, and a Redis that lost
its script cache (a restart) is answered too."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from server.realtime.presence import LOOKUP_CHUNK, RedisPresence


async def test_online_answers_every_user_past_a_chunk_and_after_a_script_flush(
        redis_url: str, redis_prefix: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        presence = RedisPresence(client, f"{redis_prefix}lookup:{uuid.uuid4().hex}:", 60)
        users = [str(uuid.uuid4()) for _ in range(LOOKUP_CHUNK * 2 + 500)]
        online = set(users[::7]) | {users[LOOKUP_CHUNK], users[-1]}
        for user in online:
            await presence.connected(user, f"conn-{user}")
        gone = users[14]  # online, then its only socket closed
        assert await presence.disconnected(gone, f"conn-{gone}")
        online.discard(gone)

        assert await presence.online(users) == {u: u in online for u in users}

        # Lookups made at once share one batch; each answer names its own users only.
        asks = [users[i:i + 3] for i in range(0, 300, 3)]
        answers = await asyncio.gather(*(presence.online(ids) for ids in asks))
        assert answers == [{u: u in online for u in ids} for ids in asks]

        await client.script_flush()  # as after a Redis restart: the script is loaded again
        assert await presence.online(users[:50]) == {u: u in online for u in users[:50]}
    finally:
        await client.aclose()
