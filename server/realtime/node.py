"""The node: this process's place in the cluster (centrifuge's ``Node``).

It owns the realtime pieces and starts and stops them as one:

- the **broker** (one subscription per node; wake-ups between nodes),
- the **hub** (this node's sockets by user, fed by that subscription),
- the durable **event stream** (append in the change's transaction, read for resume),
- **presence** (who is online on any node),
- the hourly pruning of old events,
- **outages** (``server.resources.outages``): which backend is down right now, so
  background work and the edges log an outage once, not once per socket or request.

and offers what the rest of the server sends through it: durable events are announced
by ``publish_events`` after their transaction commits (``EventStream`` calls it),
ephemeral per-user events go through ``send_ephemeral``, and ``kick`` closes sockets of
sessions, users or connections on every node. None of these raise: a broker outage is
logged and counted (durable events then arrive through each node's position check;
ephemeral events are best-effort; revoked sessions are also refused at their next
credential check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from protocol.base import Event
from protocol.codec import JSON
from protocol.codes import CloseCode
from server.observability.metrics import Metrics
from server.realtime import bus
from server.realtime.broker import Broker, BrokerUnavailable
from server.realtime.hub import Hub
from server.realtime.presence import Presence
from server.realtime.stream import Appended, EventStream, prune_periodically
from server.resources.outages import REDIS, Outages
from server.settings import Settings

log = logging.getLogger(__name__)

# Above this many template bytes in one commit a notice carries only (user, seq):
# nodes read the rows from PostgreSQL instead of pushing a huge pub/sub message.
INLINE_PAYLOAD_LIMIT = 256 * 1024


class Node:
    def __init__(self, *, db: asyncpg.Pool, broker: Broker, presence: Presence,
                 settings: Settings, metrics: Metrics, outages: Outages | None = None) -> None:
        self.broker = broker
        self.presence = presence
        self.metrics = metrics
        self.settings = settings
        self.outages = outages if outages is not None else Outages(metrics, {})
        presence.outages = self.outages
        self.stream = EventStream(db, self.publish_events, metrics, self.outages)
        self.hub: Hub[Any] = Hub(self.stream, metrics, settings.event_position_check_s)
        self._pruner: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the broker, start the position check and event pruning."""
        await self.broker.start(self.hub.on_bus, self.hub.on_broker_reconnect)
        self.hub.start()
        self._pruner = asyncio.create_task(
            prune_periodically(self.stream, self.settings.event_retention_days),
            name="event-pruner")

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        await self.hub.stop()
        await self.broker.close()
        await self.outages.stop()

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
            # Logged once per Redis outage, not per commit.
            self.metrics.broker_publish_failures.inc()
            self.outages.failed(REDIS, exc)

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

    async def _publish(self, payload: bytes, what: str) -> None:
        try:
            await self.broker.publish(payload)
        except BrokerUnavailable as exc:
            self.metrics.broker_publish_failures.inc()
            if what == "ephemeral":  # best effort: counted, logged once per outage
                self.outages.failed(REDIS, exc)
            else:  # a kick that did not go out matters: say so every time
                log.error("%s not published: broker unavailable", what,
                          extra={"error": str(exc)})
