"""Both RateLimiter implementations honour one contract (Redis for real, not mocked)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import pytest
import redis.asyncio as aioredis

from server.resources.ratelimit import (
    Decision,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    reserve,
)
from tests.support.services import free_port
from tests.support.waiting import until


async def _allowed(decision: Awaitable[Decision]) -> bool:
    return (await decision).allowed


@pytest.fixture(params=["redis", "memory"])
async def limiter(request: pytest.FixtureRequest, redis_url: str,
                  redis_prefix: str) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield RedisRateLimiter(client, f"{redis_prefix}{uuid.uuid4().hex[:8]}:")
    finally:
        await client.aclose()


async def test_allows_up_to_the_limit_then_refuses_with_retry_after(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert (await limiter.hit("k", 3, 10)).allowed
    refused = await limiter.hit("k", 3, 10)
    assert not refused.allowed
    assert 9 < refused.retry_after_s <= 10
    assert refused.retry_after_header == "10"
    # Keys are independent.
    assert (await limiter.hit("other", 3, 10)).allowed


async def test_peek_does_not_count(limiter: RateLimiter) -> None:
    for _ in range(5):
        assert (await limiter.peek("p", 2, 10)).allowed
    await limiter.hit("p", 2, 10)
    assert (await limiter.peek("p", 2, 10)).allowed
    await limiter.hit("p", 2, 10)
    decision = await limiter.peek("p", 2, 10)
    assert not decision.allowed and decision.retry_after_s > 0


async def test_window_slides_and_refusals_are_not_recorded(limiter: RateLimiter) -> None:
    first = time.monotonic()
    assert (await limiter.hit("w", 2, 0.3)).allowed
    await until(lambda: time.monotonic() >= first + 0.15, what="half the window")
    assert (await limiter.hit("w", 2, 0.3)).allowed
    refused = await limiter.hit("w", 2, 0.3)
    assert not refused.allowed
    # The oldest event leaves the window first: retry_after counts to it.
    assert refused.retry_after_s <= 0.2
    await until(lambda: _allowed(limiter.peek("w", 2, 0.3)),
                timeout=refused.retry_after_s + 1, what="the oldest event to leave the window")
    assert (await limiter.hit("w", 2, 0.3)).allowed
    assert not (await limiter.hit("w", 2, 0.3)).allowed


async def test_release_takes_back_exactly_one_event(limiter: RateLimiter) -> None:
    first = await limiter.hit("r", 2, 10)
    second = await limiter.hit("r", 2, 10)
    assert first.token and second.token and first.token != second.token
    assert not (await limiter.hit("r", 2, 10)).allowed
    await limiter.release("r", first.token)
    await limiter.release("r", first.token)  # twice: still one event back, not two
    assert (await limiter.hit("r", 2, 10)).allowed
    assert not (await limiter.hit("r", 2, 10)).allowed
    assert (await limiter.peek("r", 2, 10)).token is None


async def test_reserve_records_under_every_limit_or_none(limiter: RateLimiter) -> None:
    both = [Limit("a", 3, 10), Limit("b", 1, 10)]
    held = await reserve(limiter, both)
    assert held.allowed
    refused = await reserve(limiter, both)
    assert not refused.allowed and refused.refused == both[1] and refused.retry_after_s > 0
    # The refusal by "b" used up nothing of "a": two more fit there.
    assert (await limiter.hit("a", 3, 10)).allowed
    assert (await limiter.hit("a", 3, 10)).allowed
    assert not (await limiter.hit("a", 3, 10)).allowed
    await held.release()
    await held.release()
    assert (await reserve(limiter, [Limit("b", 1, 10)])).allowed


async def test_concurrent_reservations_never_exceed_the_limit(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*[reserve(limiter, [Limit("c", 4, 10), Limit("d", 9, 10)])
                                     for _ in range(40)])
    assert sum(r.allowed for r in results) == 4


async def test_reset_forgets_the_key(limiter: RateLimiter) -> None:
    await limiter.hit("r", 1, 10)
    assert not (await limiter.hit("r", 1, 10)).allowed
    await limiter.reset("r")
    assert (await limiter.hit("r", 1, 10)).allowed


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*(limiter.hit("c", 10, 10) for _ in range(50)))
    assert sum(d.allowed for d in results) == 10


async def test_two_redis_limiters_share_counts(redis_url: str, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    a, b = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    try:
        node1, node2 = RedisRateLimiter(a, prefix), RedisRateLimiter(b, prefix)
        assert (await node1.hit("shared", 2, 10)).allowed
        assert (await node2.hit("shared", 2, 10)).allowed
        assert not (await node1.hit("shared", 2, 10)).allowed
        keys = [k async for k in a.scan_iter(match=f"{prefix}*")]
        assert keys == [f"{prefix}rl:shared".encode()]
        assert 0 < await a.ttl(keys[0]) <= 10
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_outage_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                     socket_connect_timeout=0.5)
    try:
        limiter = RedisRateLimiter(client, "x:")
        assert (await limiter.hit("k", 1, 10)).allowed
        assert (await limiter.hit("k", 1, 10)).allowed
        await limiter.reset("k")
    finally:
        await client.aclose()
    assert "rate limiter unavailable" in caplog.text


def test_memory_limiter_sweeps_idle_keys() -> None:
    limiter = MemoryRateLimiter()

    async def fill() -> None:
        for i in range(MemoryRateLimiter._SWEEP_EVERY * 2):
            await limiter.hit(f"key{i}", 1, 0.001)
            if i == 0:  # the first key's window ends before the others arrive
                ends = time.monotonic() + 0.002
                await until(lambda ends=ends: time.monotonic() > ends, interval=0.001)

    asyncio.run(fill())
    assert len(limiter._events) < MemoryRateLimiter._SWEEP_EVERY * 2
