"""Presence: a user is online while any of their sockets on any node is open.

``RedisPresence`` keeps one sorted set per user: member = connection id,
score = expiry (ms). Each node refreshes its sockets' entries on every
heartbeat sweep, so a killed node's users drop offline within ``ttl_s``.
``MemoryPresence`` is the single-node equivalent.

Connection ids sort by connect time, so the oldest connections come first.

A user with a socket on this node (``Presence.here``, the node's hub) is online without a
Redis lookup; only the others are looked up.

``online`` raises when Redis cannot be reached for users not on this node
(``presence.query`` then answers ``unavailable``). Work that only *uses* presence to
decide something — whether to queue a push, inside a transaction that must not fail for
it — calls ``online_or_unknown``:
bounded by ``LOOKUP_TIMEOUT_S``, it never raises and leaves users whose presence cannot
be read out of its answer, so callers treat them as offline (notification and push).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

import redis.asyncio as aioredis

from server.resources.outages import REDIS, Outages

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_S = 1.0
LOOKUP_CHUNK = 1000
"""Users per lookup script call (bounds how long one call holds Redis)."""

# KEYS: the users' presence keys; ARGV[1]: now (ms). One bulk string with one character
# per key, "1" online or "0" not: one command to pack and one reply to parse per batch,
# where a pipeline of ZCOUNTs costs redis-py both per user.
_ONLINE = """
local out = {}
for i, key in ipairs(KEYS) do
    out[i] = redis.call('ZCOUNT', key, ARGV[1], '+inf') > 0 and '1' or '0'
end
return table.concat(out)
"""
_ONLINE_FLAG = ord("1")


class Presence(ABC):
    name: str
    outages: Outages | None = None
    """Where a failed degraded lookup is noted (set by the node)."""
    here: Callable[[str], bool] | None = None
    """Whether a user has a socket on this node (set by the node: its hub). Such a user is
    online without asking Redis; only the others are looked up."""

    async def online_or_unknown(self, user_ids: Sequence[str]) -> dict[str, bool]:
        """``online``, but never raising: on a Redis error or after ``LOOKUP_TIMEOUT_S``
        the answer names only the users on this node (the others unknown, to be treated
        as offline)."""
        if not user_ids:
            return {}
        try:
            return await asyncio.wait_for(self.online(user_ids), timeout=LOOKUP_TIMEOUT_S)
        except Exception as exc:
            if self.outages is not None:
                self.outages.failed(REDIS, exc)
            else:
                log.warning("presence unavailable; treating users as offline",
                            extra={"error": repr(exc)})
            return self._on_this_node(user_ids)

    def _on_this_node(self, user_ids: Sequence[str]) -> dict[str, bool]:
        """The users of ``user_ids`` with a socket on this node, each online."""
        here = self.here
        return {} if here is None else {u: True for u in user_ids if here(u)}

    @abstractmethod
    async def connected(self, user_id: str, connection_id: str) -> list[str]:
        """Record a new socket; return the user's live connection ids, oldest first."""

    @abstractmethod
    async def disconnected(self, user_id: str, connection_id: str) -> bool:
        """Forget a socket; True if the user has no live socket left anywhere."""

    @abstractmethod
    async def refresh(self, entries: Iterable[tuple[str, str]]) -> None:
        """Keep these (user_id, connection_id) entries alive for another TTL."""

    @abstractmethod
    async def online(self, user_ids: Sequence[str]) -> dict[str, bool]: ...


class MemoryPresence(Presence):
    name = "memory"

    def __init__(self) -> None:
        self._by_user: dict[str, set[str]] = {}

    async def connected(self, user_id: str, connection_id: str) -> list[str]:
        conns = self._by_user.setdefault(user_id, set())
        conns.add(connection_id)
        return sorted(conns)

    async def disconnected(self, user_id: str, connection_id: str) -> bool:
        conns = self._by_user.get(user_id)
        if conns is None:
            return True
        conns.discard(connection_id)
        if not conns:
            del self._by_user[user_id]
            return True
        return False

    async def refresh(self, entries: Iterable[tuple[str, str]]) -> None:
        return None

    async def online(self, user_ids: Sequence[str]) -> dict[str, bool]:
        return {u: bool(self._by_user.get(u)) for u in user_ids}


class RedisPresence(Presence):
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._lookups: list[tuple[Sequence[str], asyncio.Future[dict[str, bool]]]] = []
        self._lookup_task: asyncio.Task[None] | None = None
        self._online = client.register_script(_ONLINE)

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}presence:{user_id}"

    async def connected(self, user_id: str, connection_id: str) -> list[str]:
        now = _now_ms()
        key = self._key(user_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {connection_id: now + self._ttl_ms})
            pipe.pexpire(key, self._ttl_ms)
            pipe.zrange(key, 0, -1)
            *_, members = await pipe.execute()
        return sorted(m.decode() for m in members)

    async def disconnected(self, user_id: str, connection_id: str) -> bool:
        key = self._key(user_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(key, connection_id)
            pipe.zremrangebyscore(key, "-inf", _now_ms())
            pipe.zcard(key)
            *_, remaining = await pipe.execute()
        return int(remaining) == 0

    async def refresh(self, entries: Iterable[tuple[str, str]]) -> None:
        expiry = _now_ms() + self._ttl_ms
        async with self._client.pipeline(transaction=False) as pipe:
            count = 0
            for user_id, connection_id in entries:
                key = self._key(user_id)
                # Plain ZADD (not XX): entries come back after a Redis restart.
                pipe.zadd(key, {connection_id: expiry})
                pipe.pexpire(key, self._ttl_ms)
                count += 1
            if count:
                await pipe.execute()

    async def online(self, user_ids: Sequence[str]) -> dict[str, bool]:
        """Users with a socket on this node are online as they are; the others are looked
        up, and lookups made while one is in flight share the next call: under load many
        ``presence.query`` commands cost one Redis round trip, not one each."""
        found = self._on_this_node(user_ids)
        elsewhere = [u for u in user_ids if u not in found]
        if not elsewhere:
            return found
        future: asyncio.Future[dict[str, bool]] = asyncio.get_running_loop().create_future()
        self._lookups.append((elsewhere, future))
        if self._lookup_task is None:
            self._lookup_task = asyncio.create_task(self._look_up(), name="presence-lookups")
        found.update(await future)
        return {u: found[u] for u in user_ids}

    async def _look_up(self) -> None:
        """Run the waiting lookups, one pipeline per batch, until none is left."""
        try:
            while self._lookups:
                batch, self._lookups = self._lookups, []
                try:
                    found = await self._counts({u for ids, _ in batch for u in ids})
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    for _, future in [*batch, *self._lookups]:
                        future.cancel()
                    self._lookups = []
                    raise
                for ids, future in batch:
                    if not future.done():
                        future.set_result({u: found[u] for u in ids})
        finally:
            self._lookup_task = None

    async def _counts(self, user_ids: set[str]) -> dict[str, bool]:
        now = _now_ms()
        users = list(user_ids)
        found: dict[str, bool] = {}
        for i in range(0, len(users), LOOKUP_CHUNK):
            chunk = users[i : i + LOOKUP_CHUNK]
            flags: bytes = await self._online(keys=[self._key(u) for u in chunk], args=[now])
            found.update(zip(chunk, (flag == _ONLINE_FLAG for flag in flags), strict=True))
        return found


def _now_ms() -> int:
    return int(time.time() * 1000)
