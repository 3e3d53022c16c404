"""The node: this process's place in the cluster (centrifuge's ``Node``).

It owns the realtime pieces and starts and stops them as one:

- the **broker** (one subscription per node; wake-ups between nodes),
- the **hub** (this node's sockets by user, fed by that subscription),
- the durable **event stream** (append in the change's transaction, read for resume),
- **presence** (who is online on any node),
- the **acks** sockets report, written for every node to read (``acks.py``),
- the hourly pruning of old events.

and offers what the rest of the server sends through it: durable events are announced
by ``publish_events`` after their transaction commits (``EventStream`` calls it),
ephemeral per-user events go through ``send_ephemeral``, and ``kick`` closes sockets of
sessions, users or connections on every node. ``broadcast`` tells every node's handler
for a topic (``on_broadcast``) that something changed; such a handler typically answers
with ``send_to_local_users``, one event per user computed on the node that holds the
sockets. None of these raise: a broker outage is
logged and counted (durable events then arrive through each node's position check;
ephemeral events are best-effort; revoked sessions are also refused at their next
credential check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg

from protocol.base import Event
from protocol.codec import JSON
from protocol.codes import CloseCode
from server.observability.metrics import Metrics
from server.realtime import bus
from server.realtime.acks import AckRecorder
from server.realtime.broker import Broker, BrokerUnavailable
from server.realtime.frames import Frame
from server.realtime.hub import BroadcastHandler, Hub
from server.realtime.presence import Presence
from server.realtime.stream import Appended, EventStream, prune_periodically
from server.settings import Settings

log = logging.getLogger(__name__)

# Above this many template bytes in one commit a notice carries only (user, seq):
# nodes read the rows from PostgreSQL instead of pushing a huge pub/sub message.
INLINE_PAYLOAD_LIMIT = 256 * 1024


class Node:
    def __init__(self, *, db: asyncpg.Pool, broker: Broker, presence: Presence,
                 settings: Settings, metrics: Metrics) -> None:
        self.broker = broker
        self.presence = presence
        self.metrics = metrics
        self.settings = settings
        self.stream = EventStream(db, self.publish_events, metrics)
        self.hub: Hub[Any] = Hub(self.stream, metrics, settings.event_position_check_s)
        self.acks = AckRecorder(db, settings.ack_flush_s)
        self._pruner: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the broker, start the position check and event pruning."""
        await self.broker.start(self.hub.on_bus, self.hub.on_broker_reconnect)
        self.hub.start()
        self.acks.start()
        self._pruner = asyncio.create_task(
            prune_periodically(self.stream, self.settings.event_retention_days),
            name="event-pruner")

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        await self.acks.stop()
        await self.hub.stop()
        await self.broker.close()

    # --- what the server sends through the node --------------------------------------------
    async def publish_events(self, appended: Sequence[Appended]) -> None:
        """Announce committed durable events to every node (this one included)."""
        total = sum(len(a.template) for a in appended)
        inline = total <= INLINE_PAYLOAD_LIMIT
        notice = bus.Events(groups=[
            bus.EventGroup(a.template if inline else None, a.seq_at, a.targets)
            for a in appended
        ])
        try:
            await self.broker.publish(bus.encode(notice))
        except BrokerUnavailable as exc:
            # Committed already; nodes pick the events up at their next position check.
            self.metrics.broker_publish_failures.inc()
            log.warning("event notice not published", extra={
                "error": str(exc), "events": sum(len(a.targets) for a in appended)})

    async def send_ephemeral(self, user_ids: Iterable[str], event: Event) -> None:
        """Send a non-durable event to every socket of these users, on whichever node."""
        targets = list(dict.fromkeys(user_ids))
        if not targets:
            return
        message = bus.Ephemeral(user_ids=targets, payload=JSON.encode(event))
        await self._publish(bus.encode(message), "ephemeral")

    async def kick(
        self,
        *,
        code: CloseCode,
        reason: str,
        session_ids: tuple[str, ...] = (),
        user_ids: tuple[str, ...] = (),
        connection_ids: tuple[str, ...] = (),
    ) -> None:
        """Close, on every node, the sockets of these sessions/users/connections."""
        message = bus.Kick(code=int(code), reason=reason, session_ids=session_ids,
                           user_ids=user_ids, connection_ids=connection_ids)
        await self._publish(bus.encode(message), "kick")

    # --- node-wide broadcasts --------------------------------------------------------------
    def on_broadcast(self, topic: str, handler: BroadcastHandler) -> None:
        """Run ``handler(payload)`` on this node for every ``broadcast`` on ``topic`` (from
        any node, this one included). Register before ``start``; one handler per topic."""
        self.hub.on_broadcast(topic, handler)

    async def broadcast(self, topic: str, payload: bytes = b"") -> None:
        """Tell every node's ``topic`` handler (this node's too). Best effort."""
        await self._publish(bus.encode(bus.Broadcast(topic=topic, payload=payload)),
                            f"broadcast {topic}")

    def send_to_local_users(self, make: Callable[[str], Event | None]) -> int:
        """For every user with a socket on THIS node, send ``make(user_id)`` (None: skip)
        to their sockets here; returns the sockets reached. Each user's event is encoded
        once and shared by their sockets. Not stored, not replayed."""
        reached = 0
        for user_id in self.hub.user_ids():
            event = make(user_id)
            if event is not None:
                reached += self.hub.offer_to_user(user_id, Frame(JSON.encode(event)))
        return reached

    async def _publish(self, payload: bytes, what: str) -> None:
        try:
            await self.broker.publish(payload)
        except BrokerUnavailable as exc:
            self.metrics.broker_publish_failures.inc()
            log.error("%s not published: broker unavailable", what, extra={"error": str(exc)})
