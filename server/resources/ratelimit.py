"""Sliding-window rate limits shared by every feature (login, register, uploads, sockets).

``RateLimiter`` is the contract:

- ``hit(key, limit, window_s)`` records one event for ``key`` if fewer than
  ``limit`` events were recorded in the last ``window_s`` seconds, and says so.
  A refused hit is *not* recorded, so a client that keeps knocking while
  blocked is let in again ``window_s`` after its last accepted event at most.
  ``retry_after_s`` is > 0 exactly when ``allowed`` is False: the seconds until
  the oldest event in the window expires.
- ``peek(key, limit, window_s)`` answers the same question without recording
  (used to refuse a login before checking a password, while counting failures only).
- ``reset(key)`` forgets every event of ``key``.
- ``take(key, limit, window_s, message)`` is ``hit`` that raises ``RateLimited`` when
  refused (what per-user command limits use).
- ``release(key, token)`` takes back one recorded event: ``hit`` returns its ``token``
  (None when nothing was recorded). Reserving an attempt *before* the work it limits
  and releasing it when the attempt must not count is how a burst of concurrent
  attempts can never exceed the limit (login checks: ``reserve`` below).
- ``limit`` is at least 1 and ``window_s`` > 0.

Keys are caller-chosen strings such as ``login:addr:203.0.113.9``; callers hash
personal data (emails) before putting it in a key.

``RedisRateLimiter`` is shared by every node (one Lua script per call, so the
check-and-record is atomic); ``MemoryRateLimiter`` is for a single node. Both
fail open: a Redis outage is logged and the hit allowed, so logins keep working
while Redis is down (the argon2 cost still bounds a brute-force attempt).
"""

from __future__ import annotations

import abc
import logging
import secrets
import time
from collections import deque

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import RateLimited, retry_after_header
from server.resources.outages import REDIS, Outages

log = logging.getLogger(__name__)


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after_s: float = 0.0
    token: str | None = None
    """The recorded event, for ``release``; None for a peek, a refusal or a fail-open."""

    @property
    def retry_after_header(self) -> str:
        return retry_after_header(self.retry_after_s)


ALLOWED = Decision(True, 0.0)


class RateLimiter(abc.ABC):
    name: str

    @abc.abstractmethod
    async def hit(self, key: str, limit: int, window_s: float) -> Decision: ...

    @abc.abstractmethod
    async def peek(self, key: str, limit: int, window_s: float) -> Decision: ...

    @abc.abstractmethod
    async def reset(self, key: str) -> None: ...

    async def take(self, key: str, limit: int, window_s: float, message: str) -> None:
        """``hit``, raising ``RateLimited(message, retry_after_s)`` when refused: the one
        way a command is limited per user across sockets and nodes."""
        decision = await self.hit(key, limit, window_s)
        if not decision.allowed:
            raise RateLimited(message, decision.retry_after_s)

    @abc.abstractmethod
    async def release(self, key: str, token: str | None) -> None: ...


class MemoryRateLimiter(RateLimiter):
    """Single-node limiter: a deque of monotonic timestamps per key."""

    name = "memory"
    _SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._events: dict[str, deque[tuple[float, str]]] = {}
        self._windows: dict[str, float] = {}
        self._calls = 0
        self._serial = 0

    def _window(self, key: str, window_s: float, now: float) -> deque[tuple[float, str]]:
        events = self._events.setdefault(key, deque())
        self._windows[key] = window_s
        while events and events[0][0] <= now - window_s:
            events.popleft()
        return events

    def _decide(self, events: deque[tuple[float, str]], limit: int, window_s: float,
                now: float) -> Decision:
        if len(events) < limit:
            return ALLOWED
        oldest = events[len(events) - limit][0]
        return Decision(False, max(oldest + window_s - now, 0.001))

    async def hit(self, key: str, limit: int, window_s: float) -> Decision:
        now = time.monotonic()
        self._maybe_sweep(now)
        events = self._window(key, window_s, now)
        decision = self._decide(events, limit, window_s, now)
        if decision.allowed:
            self._serial += 1
            token = str(self._serial)
            events.append((now, token))
            return Decision(True, 0.0, token)
        return decision

    async def peek(self, key: str, limit: int, window_s: float) -> Decision:
        if key not in self._events:
            return ALLOWED
        now = time.monotonic()
        return self._decide(self._window(key, window_s, now), limit, window_s, now)

    async def reset(self, key: str) -> None:
        self._events.pop(key, None)
        self._windows.pop(key, None)

    async def release(self, key: str, token: str | None) -> None:
        events = self._events.get(key)
        if token is None or not events:
            return
        for entry in events:
            if entry[1] == token:
                events.remove(entry)
                return

    def _maybe_sweep(self, now: float) -> None:
        # Keys whose events have all expired would otherwise accumulate forever.
        self._calls += 1
        if self._calls % self._SWEEP_EVERY:
            return
        for key in list(self._events):
            events = self._events[key]
            if not events or events[-1][0] <= now - self._windows.get(key, 0.0):
                del self._events[key]
                self._windows.pop(key, None)


# KEYS[1] = the sorted set; ARGV = limit, window (ms), record (0|1), unique member suffix.
# Scores are Redis server time in ms, so nodes with skewed clocks agree.
_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  if ARGV[3] == '1' then
    local member = now .. '-' .. ARGV[4]
    redis.call('ZADD', KEYS[1], now, member)
    redis.call('PEXPIRE', KEYS[1], window)
    return {1, 0, member}
  end
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local retry = tonumber(oldest[2]) + window - now
if retry < 1 then retry = 1 end
return {0, retry}
"""


class RedisRateLimiter(RateLimiter):
    """Cross-node limiter: a sorted set per key under ``{prefix}rl:``, expiring with its window."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, outages: Outages | None = None
                 ) -> None:
        self._client = client
        self._outages = outages
        self._prefix = f"{prefix}rl:"
        self._script = client.register_script(_SCRIPT)

    async def _run(self, key: str, limit: int, window_s: float, record: bool) -> Decision:
        window_ms = max(1, round(window_s * 1000))
        try:
            answer = await self._script(
                keys=[self._prefix + key],
                args=[limit, window_ms, "1" if record else "0", secrets.token_hex(8)],
            )
        except (RedisError, OSError) as exc:
            if self._outages is not None:  # one line per outage, not per hit
                self._outages.failed(REDIS, exc)
            else:
                log.error("rate limiter unavailable: allowing",
                          extra={"error": type(exc).__name__})
            return ALLOWED
        if int(answer[0]):
            if len(answer) > 2:
                member = answer[2]
                return Decision(True, 0.0, member.decode() if isinstance(member, bytes)
                                else str(member))
            return ALLOWED
        return Decision(False, int(answer[1]) / 1000)

    async def hit(self, key: str, limit: int, window_s: float) -> Decision:
        return await self._run(key, limit, window_s, record=True)

    async def peek(self, key: str, limit: int, window_s: float) -> Decision:
        return await self._run(key, limit, window_s, record=False)

    async def reset(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            log.error("rate limiter reset failed", extra={"error": type(exc).__name__})

    async def release(self, key: str, token: str | None) -> None:
        if token is None:
            return
        try:
            await self._client.zrem(self._prefix + key, token)
        except (RedisError, OSError) as exc:
            log.error("rate limiter release failed", extra={"error": type(exc).__name__})


class Limit(msgspec.Struct, frozen=True):
    """One limit a ``reserve`` must fit: ``limit`` events of ``key`` per ``window_s``."""

    key: str
    limit: int
    window_s: float


class Reservation:
    """Events recorded by ``reserve``: they count unless ``release``d."""

    __slots__ = ("_held", "_limiter", "refused", "retry_after_s")

    def __init__(self, limiter: RateLimiter, held: list[tuple[str, str | None]],
                 refused: Limit | None, retry_after_s: float) -> None:
        self._limiter = limiter
        self._held = held
        self.refused = refused
        """The first limit that was full (nothing is then held), or None."""
        self.retry_after_s = retry_after_s

    @property
    def allowed(self) -> bool:
        return self.refused is None

    async def release(self) -> None:
        """Take the events back (the attempt must not count: it succeeded, or it was never
        made). Idempotent."""
        held, self._held = self._held, []
        for key, token in held:
            await self._limiter.release(key, token)


async def reserve(limiter: RateLimiter, limits: list[Limit]) -> Reservation:
    """Record one event under every limit, or under none.

    Each key's check-and-record is atomic (one Lua script on Redis), so however many
    attempts run at once, no key ever admits more than its limit: an attempt is counted
    *before* the work it limits (a password check), not after. When a limit is full the
    events already recorded for this attempt are released, so a refusal by one limit
    uses up none of the others."""
    held: list[tuple[str, str | None]] = []
    for limit in limits:
        decision = await limiter.hit(limit.key, limit.limit, limit.window_s)
        if not decision.allowed:
            refused = Reservation(limiter, held, limit, decision.retry_after_s)
            await refused.release()
            return refused
        held.append((limit.key, decision.token))
    return Reservation(limiter, held, None, 0.0)
