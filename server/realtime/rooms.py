"""Room presence: which distinct users are in a room, across nodes, with expiry.

Contract (both implementations):
- A node records a user in a room with ``enter`` when the user's first socket on that
  node joins it, and ``exit`` when the user's last socket on that node leaves it; the
  count is of distinct **users**, however many sockets or nodes they use.
- ``enter(..., capacity=n)`` refuses (returns None) when ``n`` users other than
  ``uncounted`` are in already and the user is not one of them; the check and the
  insert are one atomic step, so two nodes admitting the n-th and (n+1)-th user at
  once admit exactly one.
- ``uncounted`` (e.g. a live stream's host) is never counted nor refused.
- Entries expire: each node ``refresh``es its own every ``ttl_s / 3``; a crashed node's
  users drop out within ``ttl_s``.

``RedisRoomPresence`` keeps per room a sorted set of ``user|node`` members scored by
expiry (Redis server time, so node clocks do not matter) and a hash user → number of
nodes holding them (its length is the count). Both keys of a room share a hash tag, so
a Redis Cluster keeps them in one slot. ``MemoryRoomPresence`` is the single-node
equivalent (no expiry needed: there is no other node to crash).
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence, Set

import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class RoomPresence(ABC):
    name: str
    ttl_s: float

    @abstractmethod
    async def enter(self, room: str, user_id: str, *, capacity: int | None = None,
                    uncounted: str | None = None) -> int | None:
        """Record ``user_id`` in ``room`` (for this node). Returns the room's count after
        (``uncounted`` left out), or None when ``capacity`` was reached without them."""

    @abstractmethod
    async def exit(self, room: str, user_id: str) -> None:
        """This node no longer holds ``user_id`` in ``room``."""

    @abstractmethod
    async def refresh(self, entries: Mapping[str, Set[str]]) -> None:
        """Keep this node's entries (room → users) alive for another ``ttl_s``."""

    @abstractmethod
    async def counts(self, rooms: Sequence[tuple[str, str | None]]) -> list[int]:
        """Distinct users in each (room, uncounted user) pair, in order."""

    async def count(self, room: str, *, uncounted: str | None = None) -> int:
        return (await self.counts([(room, uncounted)]))[0]

    @abstractmethod
    async def contains(self, room: str, user_id: str) -> bool:
        """Whether ``user_id`` is in ``room`` on any node."""

    @abstractmethod
    async def clear(self, room: str) -> None:
        """Forget the room on every node (it was closed)."""


class MemoryRoomPresence(RoomPresence):
    name = "memory"
    ttl_s = float("inf")

    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}

    def _count(self, room: str, uncounted: str | None) -> int:
        users = self._rooms.get(room, set())
        return len(users) - (1 if uncounted is not None and uncounted in users else 0)

    async def enter(self, room: str, user_id: str, *, capacity: int | None = None,
                    uncounted: str | None = None) -> int | None:
        users = self._rooms.setdefault(room, set())
        if (capacity is not None and user_id != uncounted and user_id not in users
                and self._count(room, uncounted) >= capacity):
            if not users:
                del self._rooms[room]
            return None
        users.add(user_id)
        return self._count(room, uncounted)

    async def exit(self, room: str, user_id: str) -> None:
        users = self._rooms.get(room)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._rooms[room]

    async def refresh(self, entries: Mapping[str, Set[str]]) -> None:
        return None

    async def counts(self, rooms: Sequence[tuple[str, str | None]]) -> list[int]:
        return [self._count(room, uncounted) for room, uncounted in rooms]

    async def contains(self, room: str, user_id: str) -> bool:
        return user_id in self._rooms.get(room, ())

    async def clear(self, room: str) -> None:
        self._rooms.pop(room, None)


# Shared head of every script: KEYS[1] = members zset, KEYS[2] = user → nodes hash.
_HEAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, m in ipairs(dead) do
  local u = string.sub(m, 1, string.find(m, '|', 1, true) - 1)
  if redis.call('HINCRBY', KEYS[2], u, -1) <= 0 then redis.call('HDEL', KEYS[2], u) end
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
local function counted(unc)
  local n = redis.call('HLEN', KEYS[2])
  if unc ~= '' and redis.call('HEXISTS', KEYS[2], unc) == 1 then n = n - 1 end
  return n
end
"""

# ARGV: ttl_ms, node, capacity (0: none), uncounted ('' none), user...
_ENTER = _HEAD + """
local ttl = tonumber(ARGV[1])
local node = ARGV[2]
local cap = tonumber(ARGV[3])
local unc = ARGV[4]
for i = 5, #ARGV do
  local u = ARGV[i]
  if cap > 0 and u ~= unc and redis.call('HEXISTS', KEYS[2], u) == 0
     and counted(unc) >= cap then
    return -1
  end
  if redis.call('ZADD', KEYS[1], now + ttl, u .. '|' .. node) == 1 then
    redis.call('HINCRBY', KEYS[2], u, 1)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return counted(unc)
"""

# ARGV: node, user
_EXIT = """
if redis.call('ZREM', KEYS[1], ARGV[2] .. '|' .. ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
end
return 0
"""

# ARGV: uncounted ('' none)
_COUNT = _HEAD + "return counted(ARGV[1])\n"

# ARGV: user
_CONTAINS = _HEAD + "return redis.call('HEXISTS', KEYS[2], ARGV[1])\n"


class RedisRoomPresence(RoomPresence):
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: float,
                 node_id: str | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self.node_id = node_id or secrets.token_hex(6)
        self._enter = client.register_script(_ENTER)
        self._exit = client.register_script(_EXIT)
        self._count = client.register_script(_COUNT)
        self._contains = client.register_script(_CONTAINS)

    def _keys(self, room: str) -> list[str]:
        tag = f"{self._prefix}room:{{{room}}}"
        return [f"{tag}:m", f"{tag}:u"]

    async def enter(self, room: str, user_id: str, *, capacity: int | None = None,
                    uncounted: str | None = None) -> int | None:
        n = await self._enter(keys=self._keys(room), args=[
            self._ttl_ms, self.node_id, capacity or 0, uncounted or "", user_id])
        return None if int(n) < 0 else int(n)

    async def exit(self, room: str, user_id: str) -> None:
        await self._exit(keys=self._keys(room), args=[self.node_id, user_id])

    async def refresh(self, entries: Mapping[str, Set[str]]) -> None:
        if not entries:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for room, users in entries.items():
                if users:
                    await self._enter(keys=self._keys(room),
                                      args=[self._ttl_ms, self.node_id, 0, "", *sorted(users)],
                                      client=pipe)
            await pipe.execute()

    async def counts(self, rooms: Sequence[tuple[str, str | None]]) -> list[int]:
        if not rooms:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for room, uncounted in rooms:
                await self._count(keys=self._keys(room), args=[uncounted or ""], client=pipe)
            results = await pipe.execute()
        return [int(n) for n in results]

    async def contains(self, room: str, user_id: str) -> bool:
        return bool(int(await self._contains(keys=self._keys(room), args=[user_id])))

    async def clear(self, room: str) -> None:
        await self._client.delete(*self._keys(room))
