"""The broker: how server nodes wake each other up.

Contract (every implementation):
- ``publish(payload)`` sends opaque bytes to every node's handler, this node's
  included. ``publish_to([(node_id, payload), ...])`` sends each payload to that one
  node's handler (its node channel): how durable, ephemeral and kick notices reach only
  the nodes that hold a recipient's socket (``routing.py``). Best effort: a message
  may be dropped or (across reconnects) reordered. Nothing durable depends on it —
  durable events are in PostgreSQL and nodes fill gaps from there;
  the broker only makes delivery fast.
- Each node holds exactly ONE subscription (``start``: the all-node channel and its own
  node channel), however many sockets it serves; the hub fans out locally.
- ``on_reconnect`` is called after the subscription was lost and is back, so
  the node can re-check what it may have missed meanwhile.
- ``publish`` raises ``BrokerUnavailable`` when the broker cannot be reached;
  callers that already committed their change log it and go on.

Rooms (the third delivery class: live chat, reactions, viewer counts):
- A room has a channel of its own. ``publish_room(room, payload)`` reaches only the
  nodes subscribed to that room (``subscribe_room``), this node included if it is;
  the node subscribes when its first local member joins and unsubscribes when the
  last one leaves, so a node without members never sees the room's traffic.
- Room channels ride on the node's ONE subscription (no connection per room or per
  socket); ``on_room_message(room, payload)`` is the handler given to ``start``.
- ``subscribe_room`` returns once the broker confirmed the subscription (or after
  the start timeout, logged): a ``publish_room`` issued after it returned is
  delivered. After a lost subscription every room is subscribed again.
- Best effort like ``publish``: room messages are ephemeral and never replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], None]
ReconnectHandler = Callable[[], None]
RoomMessageHandler = Callable[[str, bytes], None]


class BrokerUnavailable(RuntimeError):
    pass


def new_node_id() -> str:
    """A fresh id for this process's node (its routes and node channel)."""
    return secrets.token_hex(8)


def node_channel(channel: str, node_id: str) -> str:
    """The channel only ``node_id`` subscribes to."""
    return f"{channel}:node:{node_id}"


class Deliver:
    """Hands one received pub/sub message to the node's handlers by its channel: the
    all-node or this node's channel → ``on_message``, a room channel → ``on_room_message``.
    Shared by the plain and the sharded Redis broker; a handler's exception is logged,
    never ends the subscription."""

    __slots__ = ("_bus", "_mine", "_on_message", "_on_room_message", "_prefix")

    def __init__(self, bus: str, mine: str, room_prefix: str, on_message: MessageHandler,
                 on_room_message: RoomMessageHandler | None) -> None:
        self._bus, self._mine = bus.encode(), mine.encode()
        self._prefix = room_prefix.encode()
        self._on_message, self._on_room_message = on_message, on_room_message

    def __call__(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._mine or channel == self._bus:
                self._on_message(data)
            elif self._on_room_message is not None and channel.startswith(self._prefix):
                self._on_room_message(channel[len(self._prefix):].decode(), data)
        except Exception:
            log.exception("broker message handler failed")


class Broker(ABC):
    name: str
    node_id: str
    """This node's id: the routing table's entries and the name of its node channel."""

    @abstractmethod
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler,
                    on_room_message: RoomMessageHandler | None = None) -> None:
        """Subscribe once for this node; handlers run on the event loop, must not block."""

    @abstractmethod
    async def publish(self, payload: bytes) -> None:
        """Send to every node (this one included); ``BrokerUnavailable`` if unreachable."""

    @abstractmethod
    async def publish_to(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Send each payload to its node only; ``BrokerUnavailable`` if unreachable."""

    # --- rooms ------------------------------------------------------------------------
    @abstractmethod
    async def subscribe_room(self, room: str) -> None:
        """Receive ``room``'s messages on this node's subscription (idempotent)."""

    @abstractmethod
    async def unsubscribe_room(self, room: str) -> None:
        """Stop receiving ``room``'s messages (idempotent; never raises)."""

    @abstractmethod
    async def publish_room(self, room: str, payload: bytes) -> None:
        """Send to every node subscribed to ``room``; ``BrokerUnavailable`` if unreachable."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the broker is unreachable (used by /readyz)."""

    @abstractmethod
    async def close(self) -> None: ...


class MemoryBroker(Broker):
    """Single-node broker: delivers to this process's handler on the next loop turn."""

    name = "memory"

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._handler: MessageHandler | None = None
        self._room_handler: RoomMessageHandler | None = None
        self._rooms: set[str] = set()

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler,
                    on_room_message: RoomMessageHandler | None = None) -> None:
        self._handler = on_message
        self._room_handler = on_room_message

    async def publish(self, payload: bytes) -> None:
        if self._handler is not None:
            asyncio.get_running_loop().call_soon(self._handler, payload)

    async def publish_to(self, messages: Sequence[tuple[str, bytes]]) -> None:
        for node_id, payload in messages:
            if node_id == self.node_id:
                await self.publish(payload)

    async def subscribe_room(self, room: str) -> None:
        self._rooms.add(room)

    async def unsubscribe_room(self, room: str) -> None:
        self._rooms.discard(room)

    async def publish_room(self, room: str, payload: bytes) -> None:
        if self._room_handler is not None and room in self._rooms:
            asyncio.get_running_loop().call_soon(self._room_handler, room, payload)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._handler = None
        self._room_handler = None
        self._rooms.clear()


class RedisBroker(Broker):
    """Redis pub/sub: one channel for all nodes and ``<channel>:node:<node_id>`` for each
    node, on one subscriber connection per node.

    Room channels are ``<channel>:room:<room>`` on the same pub/sub connection: Redis
    delivers a room's messages only to the nodes subscribed to it."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, channel: str, node_id: str,
                 start_timeout_s: float = 5.0) -> None:
        self._client = client
        self._channel = channel
        self.node_id = node_id
        self._node_channel = node_channel(channel, node_id)
        self._start_timeout_s = start_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Rooms this node wants (the truth, kept across reconnects) and the pub/sub
        # connection they are subscribed on while it is up.
        self._rooms: set[str] = set()
        self._pubsub: PubSub | None = None
        self._room_prefix = f"{channel}:room:"
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}

    def room_channel(self, room: str) -> str:
        return f"{self._channel}:room:{room}"

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler,
                    on_room_message: RoomMessageHandler | None = None) -> None:
        self._task = asyncio.create_task(self._run(on_message, on_reconnect, on_room_message),
                                         name="redis-broker")
        # Wait briefly for the first subscription so a publish right after start is seen.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=self._start_timeout_s)

    async def _run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler,
                   on_room_message: RoomMessageHandler | None) -> None:
        attempt = 0
        first = True
        deliver = Deliver(self._channel, self._node_channel, self._room_prefix,
                          on_message, on_room_message)
        while True:
            pubsub = self._client.pubsub()
            try:
                wanted = set(self._rooms)
                await pubsub.subscribe(self._channel, self._node_channel,
                                       *(self.room_channel(r) for r in wanted))
                self._pubsub = pubsub
                # Rooms joined or left while that SUBSCRIBE was in flight.
                added, dropped = self._rooms - wanted, wanted - self._rooms
                if added:
                    await pubsub.subscribe(*(self.room_channel(r) for r in added))
                if dropped:
                    await pubsub.unsubscribe(*(self.room_channel(r) for r in dropped))
                self._subscribed.set()
                if not first:
                    log.info("broker subscription restored",
                             extra={"channel": self._channel, "rooms": len(self._rooms)})
                    on_reconnect()
                first = False
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    kind = message.get("type")
                    channel: bytes = message.get("channel") or b""
                    if kind == "message":
                        deliver(channel, message["data"])
                    elif kind == "subscribe":
                        for waiter in self._confirm.pop(channel, ()):
                            if not waiter.done():
                                waiter.set_result(None)
            except asyncio.CancelledError:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                self._pubsub = None
                self._subscribed.clear()
                attempt += 1
                delay = random.uniform(0, min(5.0, 0.1 * 2**attempt))
                log.warning(
                    "broker subscription lost; retrying",
                    extra={"error": repr(exc), "retry_in_s": round(delay, 2)},
                )
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(delay)

    @property
    def subscribed(self) -> bool:
        """Whether the node's subscription is up right now (false while reconnecting)."""
        return self._subscribed.is_set()

    async def publish(self, payload: bytes) -> None:
        try:
            await self._client.publish(self._channel, payload)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    async def publish_to(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if not messages:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for node_id, payload in messages:
                    pipe.publish(node_channel(self._channel, node_id), payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    # --- rooms ------------------------------------------------------------------------
    async def subscribe_room(self, room: str) -> None:
        if room in self._rooms:
            return
        self._rooms.add(room)
        pubsub = self._pubsub
        if pubsub is None:
            return  # reconnecting: the run loop subscribes every wanted room
        channel = self.room_channel(room)
        waiter = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel.encode(), []).append(waiter)
        try:
            # Only writes SUBSCRIBE; the run loop reads the confirmation.
            await pubsub.subscribe(channel)
            await asyncio.wait_for(waiter, timeout=self._start_timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            # The run loop resubscribes every wanted room once the connection is back.
            log.warning("room subscription not confirmed", extra={
                "room": room, "error": repr(exc)})
        finally:
            waiters = self._confirm.get(channel.encode())
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._confirm[channel.encode()]

    async def unsubscribe_room(self, room: str) -> None:
        if room not in self._rooms:
            return
        self._rooms.discard(room)
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await pubsub.unsubscribe(self.room_channel(room))
        except (RedisError, OSError) as exc:
            log.warning("room unsubscribe failed", extra={"room": room, "error": repr(exc)})

    async def publish_room(self, room: str, payload: bytes) -> None:
        try:
            await self._client.publish(self.room_channel(room), payload)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
