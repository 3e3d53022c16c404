"""The node: this process's place in the cluster (centrifuge's ``Node``).

It owns the realtime pieces and starts and stops them as one:

- the **broker** (one subscription per node; wake-ups between nodes),
- the **hub** (this node's sockets by user, fed by that subscription),
- the durable **event stream** (append in the change's transaction, read for resume),
- **presence** (who is online on any node),
- **routes** (which nodes hold a socket of a user: ``routing.py``), so durable,
  ephemeral and kick notices go only to those nodes' channels,
- the **acks** sockets report, written for every node to read (``acks.py``),
- the hourly pruning of old events,
- **outages** (``server.resources.outages``): which backend is down right now, so
  background work and the edges log an outage once, not once per socket or request.

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

Rooms, the third delivery class (live streams): ``join_room`` / ``leave_room`` put a
socket (by connection id: domain code never touches connections) in or out of a room,
record its user in **room presence** (distinct users across nodes, expiring) and keep
this node subscribed to the room's broker channel exactly while it holds a member;
``send_to_room`` reaches every member on every node, encoded once; ``close_room`` sends
a last frame and empties the room everywhere. A socket that closes leaves its rooms
(the hub tells the node). Membership changes of one room are serialised per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any

import asyncpg

from protocol.base import Event
from protocol.codec import JSON
from protocol.codes import CloseCode
from server.errors import Unavailable
from server.observability.metrics import Metrics
from server.realtime import bus
from server.realtime.acks import AckRecorder
from server.realtime.broker import Broker, BrokerUnavailable
from server.realtime.frames import Frame
from server.realtime.hub import BroadcastHandler, Hub
from server.realtime.presence import Presence
from server.realtime.rooms import MemoryRoomPresence, RoomPresence
from server.realtime.routing import MemoryRoutes, Routes
from server.realtime.stream import Appended, EventStream, prune_periodically
from server.resources.outages import REDIS, Outages
from server.settings import Settings

log = logging.getLogger(__name__)

# At most this many template bytes in one commit's notice: templates go in by audience
# (most recipients first) while they fit; the others' groups carry only (user, seq) and
# nodes read those rows from PostgreSQL instead of pushing a huge pub/sub message.
INLINE_PAYLOAD_LIMIT = 256 * 1024


class RoomJoin(StrEnum):
    JOINED = "joined"
    FULL = "full"
    """Room presence refused: ``capacity`` users are in already."""
    GONE = "gone"
    """The connection is not (or no longer) on this node."""


KeyedLocks = dict[str, tuple[asyncio.Lock, list[int]]]
"""Locks by key, each with the count of its holders and waiters (dropped at zero)."""


@contextlib.asynccontextmanager
async def _keyed_lock(locks: KeyedLocks, key: str) -> AsyncIterator[None]:
    """Hold ``key``'s lock in ``locks``; the entry exists only while someone uses it."""
    entry = locks.get(key)
    if entry is None:
        entry = locks[key] = (asyncio.Lock(), [0])
    lock, users = entry
    users[0] += 1
    try:
        async with lock:
            yield
    finally:
        users[0] -= 1
        if users[0] == 0:
            del locks[key]


class Node:
    def __init__(self, *, db: asyncpg.Pool, broker: Broker, presence: Presence,
                 settings: Settings, metrics: Metrics, rooms: RoomPresence | None = None,
                 outages: Outages | None = None, routes: Routes | None = None) -> None:
        self.broker = broker
        self.node_id = broker.node_id
        self.routes: Routes = routes or MemoryRoutes(self.node_id)
        self._route_locks: KeyedLocks = {}
        self._route_refresher: asyncio.Task[None] | None = None
        self._refresh_routes_now = asyncio.Event()
        self.presence = presence
        self.rooms: RoomPresence = rooms or MemoryRoomPresence()
        self._room_locks: KeyedLocks = {}
        self._room_tasks: set[asyncio.Task[None]] = set()
        self._room_refresher: asyncio.Task[None] | None = None
        self.metrics = metrics
        self.settings = settings
        self.outages = outages if outages is not None else Outages(metrics, {})
        presence.outages = self.outages
        self.stream = EventStream(db, self.publish_events, metrics, self.outages)
        self.hub: Hub[Any] = Hub(self.stream, metrics, settings.event_position_check_s)
        presence.here = self.hub.has_user
        self.acks = AckRecorder(db, settings.ack_flush_s)
        self.hub.on_rooms_left = self._on_rooms_left
        self.hub.on_room_closed = self._on_room_closed
        self._pruner: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the broker, start the position check and event pruning."""
        await self.broker.start(self.hub.on_bus, self._on_broker_reconnect,
                                on_room_message=self.hub.on_room)
        self.hub.start()
        self.acks.start()
        self._pruner = asyncio.create_task(
            prune_periodically(self.stream, self.settings.event_retention_days),
            name="event-pruner")
        if self.routes.ttl_s != float("inf"):
            self._route_refresher = asyncio.create_task(self._refresh_routes(),
                                                        name="route-refresh")
        if self.rooms.ttl_s != float("inf"):
            self._room_refresher = asyncio.create_task(self._refresh_rooms(),
                                                       name="room-presence-refresh")

    async def stop(self) -> None:
        if self._route_refresher is not None:
            self._route_refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._route_refresher
            self._route_refresher = None
        if self._room_refresher is not None:
            self._room_refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._room_refresher
            self._room_refresher = None
        if self._room_tasks:
            # Leaves of closed sockets: let them tell room presence (bounded).
            await asyncio.wait(list(self._room_tasks), timeout=2.0)
            for task in list(self._room_tasks):
                task.cancel()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        await self.acks.stop()
        await self.hub.stop()
        await self.broker.close()
        await self.outages.stop()

    # --- what the server sends through the node --------------------------------------------
    async def publish_events(self, appended: Sequence[Appended]) -> None:
        """Announce committed durable events to the nodes holding a recipient's socket
        (this one included): each node's notice carries only its users' targets."""
        inline: set[int] = set()
        budget = INLINE_PAYLOAD_LIMIT
        # e.g. a lost alert (one template, 1,000 watchers) before its 1,000 notifications
        for i in sorted(range(len(appended)), key=lambda i: -len(appended[i].targets)):
            size = len(appended[i].template)
            if size <= budget:
                inline.add(i)
                budget -= size
        users = list(dict.fromkeys(u for a in appended for u, _ in a.targets))
        committed_at = time.time()
        try:
            by_node = await self._route(users)
            nodes_of: dict[str, list[str]] = {}
            for node_id, node_users in by_node.items():
                for user in node_users:
                    nodes_of.setdefault(user, []).append(node_id)
            # One pass over the targets: node id → its groups (in commit order) → targets.
            per_node: dict[str, dict[int, list[tuple[str, int]]]] = {n: {} for n in by_node}
            for i, a in enumerate(appended):
                for target in a.targets:
                    for node_id in nodes_of.get(target[0], ()):
                        per_node[node_id].setdefault(i, []).append(target)
            await self.broker.publish_to([
                (node_id, bus.encode(bus.Events(groups=[
                    bus.EventGroup(appended[i].template if i in inline else None,
                                   appended[i].seq_at, targets)
                    for i, targets in groups.items()
                ], committed_at=committed_at)))
                for node_id, groups in per_node.items()
            ])
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
        payload = JSON.encode(event)
        try:
            by_node = await self._route(targets)
            await self.broker.publish_to([
                (node_id, bus.encode(bus.Ephemeral(user_ids=users, payload=payload)))
                for node_id, users in by_node.items()])
        except BrokerUnavailable as exc:  # best effort: counted, logged once per outage
            self.metrics.broker_publish_failures.inc()
            self.outages.failed(REDIS, exc)

    async def kick(
        self,
        *,
        code: CloseCode,
        reason: str,
        session_ids: tuple[str, ...] = (),
        user_ids: tuple[str, ...] = (),
        connection_ids: tuple[str, ...] = (),
        of_user: str | None = None,
    ) -> None:
        """Close, on every node, the sockets of these sessions/users/connections.

        Routed to the nodes of ``user_ids`` when only users are named, or when the
        sessions/connections all belong to ``of_user``; otherwise (a session id alone)
        it goes to every node — kicks are rare."""
        message = bus.encode(bus.Kick(code=int(code), reason=reason,
                                      session_ids=session_ids, user_ids=user_ids,
                                      connection_ids=connection_ids))
        owners: list[str] | None = None
        if of_user is not None:
            owners = list(dict.fromkeys((*user_ids, of_user)))
        elif user_ids and not session_ids and not connection_ids:
            owners = list(dict.fromkeys(user_ids))
        if owners is None:
            await self._publish(message, "kick")
            return
        try:
            by_node = await self._route(owners)
            await self.broker.publish_to([(node_id, message) for node_id in by_node])
        except BrokerUnavailable as exc:
            self.metrics.broker_publish_failures.inc()
            log.error("kick not published: broker unavailable", extra={"error": str(exc)})

    async def _route(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """node id → its users among ``user_ids``; ``BrokerUnavailable`` if unreadable."""
        try:
            return await self.routes.nodes(user_ids)
        except Exception as exc:
            raise BrokerUnavailable(f"routes unreadable: {exc!r}") from exc

    # --- routes: which nodes hold a user's sockets -----------------------------------------
    async def user_connected(self, user_id: str) -> None:
        """A socket of ``user_id`` was added to the hub: route the user's notices here.

        Call it before the socket's welcome reads ``last_seq`` (register, then catch up).
        Never raises: when Redis is down the route is written by the next refresh and
        the position check delivers meanwhile."""
        async with self._route_lock(user_id):
            if self.hub.has_user(user_id):
                try:
                    await self.routes.add(self.node_id, user_id)
                except Exception as exc:
                    self.outages.failed(REDIS, exc)

    async def user_disconnected(self, user_id: str) -> None:
        """A socket of ``user_id`` left the hub: drop the route if it was the last one."""
        async with self._route_lock(user_id):
            if not self.hub.has_user(user_id):
                try:
                    await self.routes.remove(self.node_id, user_id)
                except Exception as exc:  # the entry expires with its TTL
                    self.outages.failed(REDIS, exc)

    def _route_lock(self, user_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """One user's route add/remove on this node in hub order (an add never lands
        before the remove of a socket that closed earlier)."""
        return _keyed_lock(self._route_locks, user_id)

    def _on_broker_reconnect(self) -> None:
        """The subscription was down: notices may be lost (the hub checks every user) and
        Redis may have restarted empty, so this node's routes are written again at once
        rather than at the next refresh."""
        self.hub.on_broker_reconnect()
        self._refresh_routes_now.set()

    async def _refresh_routes(self) -> None:
        interval = max(self.routes.ttl_s / 3, 0.05)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_routes_now.wait(), interval)
            self._refresh_routes_now.clear()
            try:
                await self.routes.refresh(self.node_id, self.hub.user_ids())
            except Exception as exc:
                self.outages.failed(REDIS, exc)

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
            if what == "ephemeral":  # best effort: counted, logged once per outage
                self.outages.failed(REDIS, exc)
            else:  # a kick that did not go out matters: say so every time
                log.error("%s not published: broker unavailable", what,
                          extra={"error": str(exc)})

    # --- rooms ------------------------------------------------------------------------------
    def _room_lock(self, room: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialise one room's membership changes on this node (presence and
        subscription must follow the hub's table in order)."""
        return _keyed_lock(self._room_locks, room)

    async def join_room(self, room: str, user_id: str, connection_id: str, *,
                        capacity: int | None = None, uncounted: str | None = None) -> RoomJoin:
        """Make this node's socket ``connection_id`` a member of ``room``.

        ``capacity``: at most that many distinct users (``uncounted`` aside) across
        nodes, else ``FULL``. Returns once this node's subscription to the room is
        confirmed, so everything sent to the room afterwards reaches the socket.
        Raises ``Unavailable`` when room presence cannot be reached."""
        conn = self.hub.find(user_id, connection_id)
        if conn is None:
            return RoomJoin.GONE
        async with self._room_lock(room):
            if self.hub.in_room(room, conn):
                return RoomJoin.JOINED
            try:
                entered = await self.rooms.enter(room, user_id, capacity=capacity,
                                                 uncounted=uncounted)
            except Exception as exc:
                log.error("room presence unavailable", extra={"room": room,
                                                              "error": repr(exc)})
                raise Unavailable("rooms are unavailable right now; try again") from exc
            if entered is None:
                return RoomJoin.FULL
            if self.hub.find(user_id, connection_id) is None:  # closed meanwhile
                await self._after_leave(room, user_id)
                return RoomJoin.GONE
            self.hub.join_room(room, conn)
            await self.broker.subscribe_room(room)
        return RoomJoin.JOINED

    async def leave_room(self, room: str, user_id: str, connection_id: str) -> bool:
        """Take the socket out of ``room``; False if it was not a member here."""
        conn = self.hub.find(user_id, connection_id)
        if conn is None:
            return False
        async with self._room_lock(room):
            if not self.hub.leave_room(room, conn):
                return False
            await self._after_leave(room, user_id)
        return True

    def in_room(self, room: str, user_id: str, connection_id: str) -> bool:
        """Whether this node's socket ``connection_id`` is a member of ``room``."""
        conn = self.hub.find(user_id, connection_id)
        return conn is not None and self.hub.in_room(room, conn)

    def local_rooms(self, prefix: str = "") -> list[str]:
        """Rooms with a member on this node."""
        return self.hub.rooms(prefix)

    async def room_count(self, room: str, *, uncounted: str | None = None) -> int:
        """Distinct users in ``room`` on every node (``uncounted`` left out)."""
        return await self.rooms.count(room, uncounted=uncounted)

    async def room_counts(self, rooms: Sequence[tuple[str, str | None]]) -> list[int]:
        return await self.rooms.counts(rooms)

    async def room_has_user(self, room: str, user_id: str) -> bool:
        """Whether ``user_id`` is a member of ``room`` on any node."""
        return await self.rooms.contains(room, user_id)

    async def send_to_room(self, room: str, event: Event, *, user_ids: Sequence[str] = (),
                           exclude_user_ids: Sequence[str] = ()) -> None:
        """Send ``event`` to every member socket of ``room`` on every node (only those
        of ``user_ids`` if given; none of ``exclude_user_ids``). Encoded once here;
        each node fans the same bytes out. Best effort, never raises."""
        message = bus.RoomFrame(payload=JSON.encode(event), user_ids=tuple(user_ids),
                                exclude_user_ids=tuple(exclude_user_ids))
        await self._publish_room(room, bus.encode_room(message), "room frame")

    async def close_room(self, room: str, last: Event | None = None) -> None:
        """Send ``last`` to every member, then empty ``room`` on every node."""
        payload = JSON.encode(last) if last is not None else None
        await self._publish_room(room, bus.encode_room(bus.RoomClose(payload=payload)),
                                 "room close")
        try:
            await self.rooms.clear(room)
        except Exception as exc:  # entries expire anyway
            log.warning("room presence not cleared", extra={"room": room,
                                                            "error": repr(exc)})

    async def _publish_room(self, room: str, payload: bytes, what: str) -> None:
        try:
            await self.broker.publish_room(room, payload)
        except BrokerUnavailable as exc:
            self.metrics.broker_publish_failures.inc()
            log.error("%s not published: broker unavailable", what,
                      extra={"room": room, "error": str(exc)})

    async def _after_leave(self, room: str, user_id: str) -> None:
        """Under the room's lock, after a socket of ``user_id`` left ``room`` here."""
        if not self.hub.user_in_room(room, user_id):
            try:
                await self.rooms.exit(room, user_id)
            except Exception as exc:  # the entry expires with this node's refreshes
                log.warning("room presence exit failed", extra={"room": room,
                                                                "error": repr(exc)})
        if self.hub.room_size(room) == 0:
            await self.broker.unsubscribe_room(room)

    def _on_rooms_left(self, conn: Any, rooms: list[str]) -> None:
        """The hub's hook: a closed socket left ``rooms``."""
        self._room_task(self._rooms_left(conn.user_id, rooms))

    async def _rooms_left(self, user_id: str, rooms: list[str]) -> None:
        for room in rooms:
            async with self._room_lock(room):
                await self._after_leave(room, user_id)

    def _on_room_closed(self, room: str) -> None:
        self._room_task(self._room_closed(room))

    async def _room_closed(self, room: str) -> None:
        async with self._room_lock(room):
            if self.hub.room_size(room) == 0:
                await self.broker.unsubscribe_room(room)

    def _room_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._room_tasks.add(task)
        task.add_done_callback(self._room_task_done)

    def _room_task_done(self, task: asyncio.Task[None]) -> None:
        self._room_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("room membership update failed", exc_info=task.exception())

    async def _refresh_rooms(self) -> None:
        interval = max(self.rooms.ttl_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            entries = {room: self.hub.room_users(room) for room in self.hub.rooms()}
            try:
                await self.rooms.refresh(entries)
            except Exception as exc:
                log.warning("room presence refresh failed", extra={"error": repr(exc)})
