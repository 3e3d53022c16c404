"""The broker on a Redis Cluster with sharded pub/sub (``SPUBLISH`` / ``SSUBSCRIBE``).

Same contract as ``broker.RedisBroker`` (read its module doc): the all-node channel, this
node's channel and room channels, one subscription per node. The difference is where a
channel lives: a shard channel belongs to the shard that owns its hash slot, so the
broker's traffic spreads over the shards instead of every message being copied to every
cluster node (classic ``PUBLISH`` on a cluster is broadcast cluster-wide).

- ``SPUBLISH`` goes through ``RedisCluster``, which routes by slot and follows MOVED.
- Subscriptions: one plain pub/sub connection per shard master that owns a wanted
  channel, opened on first need; each ``SSUBSCRIBE`` names one channel (a command may
  not span slots).
- When a shard connection fails, or the server drops a subscription we still want
  (its slot moved: Redis sends ``sunsubscribe``), every shard subscription is torn down,
  the topology re-read and every wanted channel subscribed again on its current owner;
  ``on_reconnect`` then runs (the node re-checks positions) — rare, so kept simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from server.realtime.broker import (
    Broker,
    BrokerUnavailable,
    Deliver,
    MessageHandler,
    ReconnectHandler,
    RoomMessageHandler,
    node_channel,
)

log = logging.getLogger(__name__)


class _Shard:
    """This node's subscriber connection to one shard master."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.client = aioredis.Redis(host=host, port=port, socket_connect_timeout=2,
                                     health_check_interval=10)
        self.pubsub: PubSub = self.client.pubsub()
        self.task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.client.aclose()


class ShardedRedisBroker(Broker):
    name = "redis-cluster"

    def __init__(self, cluster: RedisCluster, channel: str, node_id: str,
                 start_timeout_s: float = 5.0) -> None:
        self._cluster = cluster
        self._channel = channel
        self.node_id = node_id
        self._node_channel = node_channel(channel, node_id)
        self._start_timeout_s = start_timeout_s
        self._rooms: set[str] = set()
        self._room_prefix = f"{channel}:room:"
        self._shards: dict[str, _Shard] = {}
        self._owner: dict[str, str] = {}  # subscribed channel → shard name
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._broken = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: tuple[MessageHandler, RoomMessageHandler | None] | None = None
        self._lock = asyncio.Lock()  # shard table changes

    def room_channel(self, room: str) -> str:
        return f"{self._room_prefix}{room}"

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def _wanted(self) -> list[str]:
        return [self._channel, self._node_channel, *(self.room_channel(r) for r in self._rooms)]

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler,
                    on_room_message: RoomMessageHandler | None = None) -> None:
        self._handlers = (on_message, on_room_message)
        self._task = asyncio.create_task(self._run(on_reconnect), name="redis-cluster-broker")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=self._start_timeout_s)

    async def _run(self, on_reconnect: ReconnectHandler) -> None:
        attempt = 0
        first = True
        while True:
            try:
                self._broken.clear()
                await self._cluster.initialize()
                if not first:  # the slot map may have changed: read it again
                    await self._cluster.nodes_manager.initialize()
                while True:  # rooms may be joined while these subscriptions are made
                    missing = [c for c in self._wanted() if c not in self._owner]
                    if not missing:
                        break
                    for channel in missing:
                        await self._subscribe(channel, confirm=True)
                self._subscribed.set()
                if not first:
                    log.info("cluster broker subscriptions restored",
                             extra={"shards": len(self._shards), "rooms": len(self._rooms)})
                    on_reconnect()
                first = False
                attempt = 0
                await self._broken.wait()
                raise ConnectionError("shard subscription lost or moved")
            except asyncio.CancelledError:
                await self._drop_shards()
                raise
            except Exception as exc:  # RedisError, OSError, RedisClusterException (no slots)
                self._subscribed.clear()
                await self._drop_shards()
                attempt += 1
                delay = random.uniform(0, min(5.0, 0.1 * 2**attempt))
                log.warning("cluster broker subscription lost; retrying",
                            extra={"error": repr(exc), "retry_in_s": round(delay, 2)})
                await asyncio.sleep(delay)

    async def _drop_shards(self) -> None:
        async with self._lock:
            shards, self._shards = list(self._shards.values()), {}
            self._owner.clear()
        for shard in shards:
            await shard.close()

    async def _subscribe(self, channel: str, *, confirm: bool) -> None:
        """SSUBSCRIBE ``channel`` on the connection to the shard owning its slot."""
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise ConnectionError(f"no shard owns the slot of {channel!r}")
        waiter: asyncio.Future[None] | None = None
        key = channel.encode()
        if confirm:
            waiter = asyncio.get_running_loop().create_future()
            self._confirm.setdefault(key, []).append(waiter)
        try:
            async with self._lock:
                shard = self._shards.get(node.name)
                fresh = shard is None
                if shard is None:
                    shard = self._shards[node.name] = _Shard(node.name, node.host, int(node.port))
                await shard.pubsub.ssubscribe(channel)
                self._owner[channel] = node.name
                if fresh:  # reading needs a subscription: start once the first is sent
                    shard.task = asyncio.create_task(self._read(shard),
                                                     name=f"shard-reader:{node.name}")
            if waiter is not None:
                await asyncio.wait_for(waiter, timeout=self._start_timeout_s)
        finally:
            if waiter is not None:
                waiters = self._confirm.get(key)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._confirm[key]

    async def _read(self, shard: _Shard) -> None:
        assert self._handlers is not None
        deliver = Deliver(self._channel, self._node_channel, self._room_prefix,
                          *self._handlers)
        try:
            while True:
                message = await shard.pubsub.get_message(timeout=30.0)
                if message is None:
                    continue
                kind = message.get("type")
                channel: bytes = message.get("channel") or b""
                if kind == "smessage":
                    deliver(channel, message["data"])
                elif kind == "ssubscribe":
                    for waiter in self._confirm.pop(channel, ()):
                        if not waiter.done():
                            waiter.set_result(None)
                elif kind == "sunsubscribe" and channel.decode() in self._wanted():
                    # The server dropped it (slot migrated): resubscribe everything.
                    log.info("shard channel moved", extra={"channel": channel.decode(),
                                                           "shard": shard.name})
                    self._broken.set()
                    return
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("shard subscription lost", extra={"shard": shard.name,
                                                          "error": repr(exc)})
            self._subscribed.clear()
            self._broken.set()

    # --- publishing -----------------------------------------------------------------------
    async def _spublish(self, channel: str, payload: bytes) -> None:
        try:
            await self._cluster.spublish(channel, payload)
        except Exception as exc:  # RedisError, OSError, RedisClusterException
            raise BrokerUnavailable(repr(exc)) from exc

    async def publish(self, payload: bytes) -> None:
        await self._spublish(self._channel, payload)

    async def publish_to(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if not messages:
            return
        results = await asyncio.gather(
            *(self._spublish(node_channel(self._channel, n), p) for n, p in messages),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # --- rooms ------------------------------------------------------------------------------
    async def subscribe_room(self, room: str) -> None:
        if room in self._rooms:
            return
        self._rooms.add(room)
        if not self._subscribed.is_set():
            return  # (re)connecting: the run loop subscribes every wanted room
        try:
            await self._subscribe(self.room_channel(room), confirm=True)
        except Exception as exc:  # the run loop resubscribes on fresh connections
            log.warning("room subscription not confirmed", extra={
                "room": room, "error": repr(exc)})
            self._broken.set()  # resubscribe everything on fresh connections

    async def unsubscribe_room(self, room: str) -> None:
        if room not in self._rooms:
            return
        self._rooms.discard(room)
        channel = self.room_channel(room)
        async with self._lock:
            name = self._owner.pop(channel, None)
            shard = self._shards.get(name) if name is not None else None
        if shard is None:
            return
        try:
            await shard.pubsub.sunsubscribe(channel)
        except (RedisError, OSError) as exc:
            log.warning("room unsubscribe failed", extra={"room": room, "error": repr(exc)})

    async def publish_room(self, room: str, payload: bytes) -> None:
        await self._spublish(self.room_channel(room), payload)

    async def ping(self) -> None:
        await self._cluster.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_shards()
