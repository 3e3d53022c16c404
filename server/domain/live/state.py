"""A live stream's ephemeral state shared by every node: recent chat, pending reaction
counts, and who flushes them.

Guarantees (both implementations):
- ``push_chat`` keeps the last ``RECENT_CHAT`` messages of a stream (a Redis list,
  never PostgreSQL); ``recent_chat`` returns them oldest first.
- ``add_reaction`` adds to the stream's pending counts, whichever node the viewer is on.
- ``tick(stream_ids, node)`` is called by every node that holds members of those
  streams, about every ``TICK_S``. Per stream exactly one node holds a lease
  (``LEASE_MS``, renewed by its ticks; a crashed holder is replaced once it runs out).
  For the holder only, a tick atomically takes the pending counts — at most once per
  ``REACTIONS_EVERY_MS`` (Redis server time), so ``live.reactions`` goes out at most
  once a second per stream however many nodes there are, and every reaction is in
  exactly one of them — and says whether a ``live.viewers`` may go out (at most every
  ``VIEWERS_EVERY_MS``, see ``viewers_sent``).
- ``clear`` forgets a stream (it ended).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

RECENT_CHAT = 50
TICK_S = 0.5
LEASE_MS = 3000
REACTIONS_EVERY_MS = 1000
VIEWERS_EVERY_MS = 2000
KEEP_S = 24 * 3600  # an abandoned stream's keys go away by themselves


@dataclass(frozen=True, slots=True)
class Tick:
    holder: bool
    """This node flushes the stream's coalesced events."""
    reactions: dict[str, int] = field(default_factory=dict)
    """Counts to send now (empty: nothing, or not yet a second since the last)."""
    viewers_due: bool = False
    """A ``live.viewers`` may go out now if the count differs from ``last_viewers``."""
    last_viewers: int = 0


NOT_HOLDER = Tick(holder=False)


class LiveState(ABC):
    name: str

    @abstractmethod
    async def push_chat(self, stream_id: str, message: bytes) -> None: ...

    @abstractmethod
    async def recent_chat(self, stream_id: str) -> list[bytes]: ...

    @abstractmethod
    async def add_reaction(self, stream_id: str, kind: str) -> None: ...

    @abstractmethod
    async def tick(self, stream_ids: Sequence[str], node_id: str) -> list[Tick]: ...

    @abstractmethod
    async def viewers_sent(self, stream_id: str, count: int) -> None:
        """A ``live.viewers`` with ``count`` went out: none for VIEWERS_EVERY_MS."""

    @abstractmethod
    async def clear(self, stream_id: str) -> None: ...


class MemoryLiveState(LiveState):
    """Single node: this process always holds every lease."""

    name = "memory"

    def __init__(self) -> None:
        self._chat: dict[str, list[bytes]] = {}
        self._reactions: dict[str, dict[str, int]] = {}
        self._reactions_at: dict[str, float] = {}
        self._viewers_at: dict[str, float] = {}
        self._viewers: dict[str, int] = {}

    async def push_chat(self, stream_id: str, message: bytes) -> None:
        chat = self._chat.setdefault(stream_id, [])
        chat.append(message)
        del chat[:-RECENT_CHAT]

    async def recent_chat(self, stream_id: str) -> list[bytes]:
        return list(self._chat.get(stream_id, ()))

    async def add_reaction(self, stream_id: str, kind: str) -> None:
        counts = self._reactions.setdefault(stream_id, {})
        counts[kind] = counts.get(kind, 0) + 1

    async def tick(self, stream_ids: Sequence[str], node_id: str) -> list[Tick]:
        now = time.monotonic()
        out = []
        for sid in stream_ids:
            reactions: dict[str, int] = {}
            if (self._reactions.get(sid)
                    and now - self._reactions_at.get(sid, -1e9) >= REACTIONS_EVERY_MS / 1000):
                reactions = self._reactions.pop(sid)
                self._reactions_at[sid] = now
            due = now - self._viewers_at.get(sid, -1e9) >= VIEWERS_EVERY_MS / 1000
            out.append(Tick(holder=True, reactions=reactions, viewers_due=due,
                            last_viewers=self._viewers.get(sid, 0)))
        return out

    async def viewers_sent(self, stream_id: str, count: int) -> None:
        self._viewers[stream_id] = count
        self._viewers_at[stream_id] = time.monotonic()

    async def clear(self, stream_id: str) -> None:
        self._chat.pop(stream_id, None)
        self._reactions.pop(stream_id, None)
        self._reactions_at.pop(stream_id, None)
        self._viewers_at.pop(stream_id, None)
        self._viewers.pop(stream_id, None)


# KEYS: lease, reactions, reactions gate, viewers gate, last viewers.
# ARGV: node, lease ms, reactions gate ms.
_TICK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local counts = {}
if redis.call('EXISTS', KEYS[3]) == 0 then
  counts = redis.call('HGETALL', KEYS[2])
  if #counts > 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  end
end
local due = 1 - redis.call('EXISTS', KEYS[4])
local last = redis.call('GET', KEYS[5]) or '0'
return {1, counts, due, last}
"""


class RedisLiveState(LiveState):
    """Keys ``{prefix}live:{<stream id>}:…`` (one hash tag per stream: one Cluster slot)."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._tick = client.register_script(_TICK)

    def _key(self, stream_id: str, what: str) -> str:
        return f"{self._prefix}live:{{{stream_id}}}:{what}"

    async def push_chat(self, stream_id: str, message: bytes) -> None:
        key = self._key(stream_id, "chat")
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, message)
            pipe.ltrim(key, -RECENT_CHAT, -1)
            pipe.expire(key, KEEP_S)
            await pipe.execute()

    async def recent_chat(self, stream_id: str) -> list[bytes]:
        items = await self._client.lrange(self._key(stream_id, "chat"), 0, -1)
        return [i if isinstance(i, bytes) else i.encode() for i in items]

    async def add_reaction(self, stream_id: str, kind: str) -> None:
        key = self._key(stream_id, "rx")
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, kind, 1)
            pipe.expire(key, KEEP_S)
            await pipe.execute()

    async def tick(self, stream_ids: Sequence[str], node_id: str) -> list[Tick]:
        if not stream_ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for sid in stream_ids:
                k = self._key
                await self._tick(
                    keys=[k(sid, "lease"), k(sid, "rx"), k(sid, "rxgate"), k(sid, "vgate"),
                          k(sid, "vlast")],
                    args=[node_id, LEASE_MS, REACTIONS_EVERY_MS], client=pipe)
            replies = await pipe.execute()
        out = []
        for reply in replies:
            if not int(reply[0]):
                out.append(NOT_HOLDER)
                continue
            flat = reply[1]
            reactions = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            out.append(Tick(holder=True, reactions=reactions, viewers_due=bool(int(reply[2])),
                            last_viewers=int(reply[3])))
        return out

    async def viewers_sent(self, stream_id: str, count: int) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(stream_id, "vlast"), count, ex=KEEP_S)
            pipe.set(self._key(stream_id, "vgate"), 1, px=VIEWERS_EVERY_MS)
            await pipe.execute()

    async def clear(self, stream_id: str) -> None:
        await self._client.delete(*(self._key(stream_id, w) for w in
                                    ("chat", "rx", "rxgate", "vgate", "vlast", "lease")))
