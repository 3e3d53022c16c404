"""The broker: how server nodes wake each other up.

Contract (both implementations):
- ``publish(payload)`` sends opaque bytes to every node's handler, this node's
  included. Best effort: a message may be dropped or (across reconnects)
  reordered. Nothing durable depends on it — durable events are in PostgreSQL
  and nodes fill gaps from there; the broker only makes delivery fast.
- Each node holds exactly ONE subscription (``start``), however many sockets
  it serves; the hub fans out locally.
- ``on_reconnect`` is called after the subscription was lost and is back, so
  the node can re-check what it may have missed meanwhile.
- ``publish`` raises ``BrokerUnavailable`` when the broker cannot be reached;
  callers that already committed their change log it and go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], None]
ReconnectHandler = Callable[[], None]


class BrokerUnavailable(RuntimeError):
    pass


class Broker(ABC):
    name: str

    @abstractmethod
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Subscribe once for this node; handlers run on the event loop, must not block."""

    @abstractmethod
    async def publish(self, payload: bytes) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the broker is unreachable (used by /readyz)."""

    @abstractmethod
    async def close(self) -> None: ...


class MemoryBroker(Broker):
    """Single-node broker: delivers to this process's handler on the next loop turn."""

    name = "memory"

    def __init__(self) -> None:
        self._handler: MessageHandler | None = None

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._handler = on_message

    async def publish(self, payload: bytes) -> None:
        if self._handler is not None:
            asyncio.get_running_loop().call_soon(self._handler, payload)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._handler = None


class RedisBroker(Broker):
    """Redis pub/sub on one channel shared by all nodes; one subscriber connection per node."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, channel: str, start_timeout_s: float = 5.0
                 ) -> None:
        self._client = client
        self._channel = channel
        self._start_timeout_s = start_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._task = asyncio.create_task(self._run(on_message, on_reconnect), name="redis-broker")
        # Wait briefly for the first subscription so a publish right after start is seen.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=self._start_timeout_s)

    async def _run(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        attempt = 0
        first = True
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                if not first:
                    log.info("broker subscription restored", extra={"channel": self._channel})
                    on_reconnect()
                first = False
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is not None and message.get("type") == "message":
                        try:
                            on_message(message["data"])
                        except Exception:
                            log.exception("broker message handler failed")
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
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

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
