"""This node's sockets by user, fed by the node's one broker subscription.

The hub never awaits a socket: it hands frames to each connection's outbox
(``offer`` never blocks) and lets cursors fetch what the broker did not carry.
Every ``event_position_check_s`` it compares its users' delivered seqs with
PostgreSQL, so a dropped pub/sub message is delivered within that interval; a round
reads only the streams that moved lately (``user_streams.change_id``), not every
connected user's row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

import msgspec

from server.observability.metrics import Metrics
from server.realtime import bus
from server.realtime.frames import EventFrame, Frame
from server.realtime.stream import CHANGES_BATCH, EventStream, with_seq

log = logging.getLogger(__name__)

POSITION_CHECK_CHUNK = 1000
POSITION_LOOKBACK_S = 10.0
"""Each round re-reads the streams stamped this long ago (commits that came late)."""
FULL_CHECK_S = 60.0
"""A full check of every local user at least this often (very long transactions)."""

BroadcastHandler = Callable[[bytes], None]
"""Gets a ``Broadcast``'s payload on the event loop; must not block (start a task)."""


class HubConnection(Protocol):
    """What the hub needs of a socket (implemented by the gateway's Connection)."""

    id: str
    user_id: str
    session_id: str

    @property
    def delivered_seq(self) -> int:
        """The highest durable seq queued to this socket."""

    def on_event(self, seq: int, frame: EventFrame | None) -> None:
        """A durable event of this user was committed (``frame`` None: read it from the
        database). Delivers in seq order, each once."""

    def catch_up(self, last_seq: int) -> None:
        """The user's stream is at ``last_seq``: fetch whatever was not delivered."""

    def offer(self, frame: Frame) -> bool:
        """Queue an ephemeral frame; False if the socket is closing or not welcomed."""

    def close_soon(self, code: int, reason: str) -> None: ...


C = TypeVar("C", bound=HubConnection)


class Hub(Generic[C]):
    def __init__(self, stream: EventStream, metrics: Metrics, position_check_s: float) -> None:
        self.stream = stream
        self.metrics = metrics
        self.position_check_s = position_check_s
        self._by_user: dict[str, set[C]] = {}
        self._topics: dict[str, BroadcastHandler] = {}
        self._check_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Position check: (monotonic time, highest change_id read) of recent rounds.
        self._marks: deque[tuple[float, int]] = deque()
        self._full_due = True
        self._last_full = 0.0
        self.position_rounds = 0
        """Position checks done so far (tests can tell that a round has happened)."""
        self.lookback_s = POSITION_LOOKBACK_S
        # Room fan-out: room → this node's member sockets, and each socket's rooms.
        self._rooms: dict[str, dict[C, None]] = {}
        self._conn_rooms: dict[C, set[str]] = {}
        self.on_rooms_left: Callable[[C, list[str]], None] | None = None
        """Called (by the node) with the rooms a closed socket was a member of: the node
        then updates room presence and its subscriptions."""
        self.on_room_closed: Callable[[str], None] | None = None
        """Called (by the node) when a ``RoomClose`` emptied a room on this node."""

    # --- membership -----------------------------------------------------------------
    def add(self, conn: C) -> None:
        self._by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: C) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]
        self._drop_from_rooms(conn)  # a closed socket leaves its rooms

    def connections(self) -> Iterator[C]:
        for conns in list(self._by_user.values()):
            yield from list(conns)

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def has_user(self, user_id: str) -> bool:
        """Whether ``user_id`` has a socket on this node."""
        return user_id in self._by_user

    def user_ids(self) -> list[str]:
        """Users with at least one socket on this node."""
        return list(self._by_user)

    def offer_to_user(self, user_id: str, frame: Frame) -> int:
        """Queue an ephemeral frame on this node's sockets of one user; how many took it."""
        return sum(1 for conn in list(self._by_user.get(user_id, ())) if conn.offer(frame))

    # --- node-wide broadcasts ------------------------------------------------------------
    def on_broadcast(self, topic: str, handler: BroadcastHandler) -> None:
        if topic in self._topics:
            raise ValueError(f"broadcast topic {topic!r} has a handler already")
        self._topics[topic] = handler

    def _on_broadcast(self, message: bus.Broadcast) -> None:
        handler = self._topics.get(message.topic)
        if handler is None:
            return  # a node without that service (e.g. mid-deploy): nothing to do
        try:
            handler(message.payload)
        except Exception:
            log.exception("broadcast handler failed", extra={"topic": message.topic})

    # --- broker input -----------------------------------------------------------------
    def on_bus(self, data: bytes) -> None:
        self.metrics.child(self.metrics.broker_received_messages, "bus").inc()
        self.metrics.child(self.metrics.broker_received_bytes, "bus").inc(len(data))
        try:
            message = bus.decode(data)
        except msgspec.DecodeError:
            log.error("undecodable broker message dropped", extra={"bytes": len(data)})
            return
        if isinstance(message, bus.Events):
            self._on_events(message)
        elif isinstance(message, bus.Ephemeral):
            frame = Frame(message.payload)
            for user_id in message.user_ids:
                for conn in self._by_user.get(user_id, ()):
                    conn.offer(frame)
        elif isinstance(message, bus.Kick):
            self._on_kick(message)
        elif isinstance(message, bus.Broadcast):
            self._on_broadcast(message)

    def on_broker_reconnect(self) -> None:
        # Notices may have been lost while the subscription was down: check every user.
        self._full_due = True
        self._check_now.set()

    def _on_events(self, message: bus.Events) -> None:
        by_user = self._by_user
        committed_at = message.committed_at
        for group in message.groups:
            template, seq_at = group.template, group.seq_at
            for user_id, seq in group.targets:
                conns = by_user.get(user_id)
                if not conns:
                    continue
                frame = None
                if template is not None:
                    frame = EventFrame(seq, with_seq(template, seq_at, seq), committed_at)
                for conn in conns:
                    conn.on_event(seq, frame)

    def _on_kick(self, kick: bus.Kick) -> None:
        sessions = set(kick.session_ids)
        conn_ids = set(kick.connection_ids)
        users = set(kick.user_ids)
        for conn in self.connections():
            if conn.user_id in users or conn.session_id in sessions or conn.id in conn_ids:
                conn.close_soon(kick.code, kick.reason)

    # --- position check ----------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._position_loop(), name="hub-position-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _position_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._check_now.wait(), timeout=self.position_check_s)
            except TimeoutError:
                pass
            self._check_now.clear()
            try:
                await self.check_positions()
            except Exception as exc:  # DB outage: next round
                self.stream.failed("position check", exc)
            self.position_rounds += 1

    async def check_positions(self) -> None:
        """Start catch-up where a local socket is behind its stream in PostgreSQL.

        Reads only the streams stamped after the mark of a round at least
        ``POSITION_LOOKBACK_S`` ago (a transaction may take its ``change_id`` and commit
        after a larger one is visible), so a round costs O(streams that moved lately),
        not O(connected users). A full check of every local user runs on the first
        round, after a broker reconnect (``on_broker_reconnect``) and every
        ``FULL_CHECK_S``, for transactions that stayed open longer than the lookback."""
        now = time.monotonic()
        marks = self._marks
        if not marks or self._full_due or now - self._last_full >= FULL_CHECK_S:
            mark = await self.stream.change_mark()  # before the read: later ones next round
            await self._check_all()
            self._full_due = False
            self._last_full = now
            marks.clear()
            marks.append((now, mark))
            return
        # The newest mark old enough to cover the lookback; older ones are not needed.
        while len(marks) > 1 and now - marks[1][0] >= self.lookback_s:
            marks.popleft()
        since = marks[0][1]
        newest = marks[-1][1]
        by_user = self._by_user
        while True:
            rows = await self.stream.changed_since(since)
            for user_id, last_seq, change_id in rows:
                since = change_id
                for conn in by_user.get(user_id, ()):
                    if conn.delivered_seq < last_seq:
                        conn.catch_up(last_seq)
            self.metrics.position_rows.inc(len(rows))
            if len(rows) < CHANGES_BATCH:
                break
        marks.append((now, max(since, newest)))

    async def _check_all(self) -> None:
        users = list(self._by_user)
        for i in range(0, len(users), POSITION_CHECK_CHUNK):
            chunk = users[i : i + POSITION_CHECK_CHUNK]
            positions = await self.stream.positions(chunk)
            self.metrics.position_rows.inc(len(positions))
            for user_id, last_seq in positions.items():
                for conn in self._by_user.get(user_id, ()):
                    if conn.delivered_seq < last_seq:
                        conn.catch_up(last_seq)

    # --- rooms (the third delivery class) ------------------------------------------------
    def find(self, user_id: str, connection_id: str) -> C | None:
        """This node's socket ``connection_id`` of ``user_id``, if it is here."""
        for conn in self._by_user.get(user_id, ()):
            if conn.id == connection_id:
                return conn
        return None

    def join_room(self, room: str, conn: C) -> None:
        self._rooms.setdefault(room, {})[conn] = None
        self._conn_rooms.setdefault(conn, set()).add(room)

    def leave_room(self, room: str, conn: C) -> bool:
        """Take ``conn`` out of ``room``; False if it was not a member."""
        members = self._rooms.get(room)
        if members is None or conn not in members:
            return False
        del members[conn]
        if not members:
            del self._rooms[room]
        rooms = self._conn_rooms.get(conn)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._conn_rooms[conn]
        return True

    def in_room(self, room: str, conn: C) -> bool:
        return conn in self._rooms.get(room, ())

    def user_in_room(self, room: str, user_id: str) -> bool:
        """Whether any of this node's sockets of ``user_id`` is a member of ``room``."""
        members = self._rooms.get(room)
        if not members:
            return False
        return any(c in members for c in self._by_user.get(user_id, ()))

    def room_size(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

    def room_users(self, room: str) -> set[str]:
        return {c.user_id for c in self._rooms.get(room, ())}

    def rooms(self, prefix: str = "") -> list[str]:
        """Rooms with at least one member on this node."""
        return [r for r in self._rooms if r.startswith(prefix)]

    def _drop_from_rooms(self, conn: C) -> None:
        rooms = self._conn_rooms.pop(conn, None)
        if not rooms:
            return
        for room in rooms:
            members = self._rooms.get(room)
            if members is not None:
                members.pop(conn, None)
                if not members:
                    del self._rooms[room]
        if self.on_rooms_left is not None:
            self.on_rooms_left(conn, sorted(rooms))

    def on_room(self, room: str, data: bytes) -> None:
        """A room message from the broker: fan it out to this node's members.

        One ``Frame`` for all of them (JSON as received, MessagePack derived once on
        first need); ``offer`` never blocks, and a member whose outbox is full is closed
        4008 by the outbox rule, so a slow viewer never holds up the room."""
        try:
            message = bus.decode_room(data)
        except msgspec.DecodeError:
            log.error("undecodable room message dropped", extra={"room": room,
                                                                 "bytes": len(data)})
            return
        self.metrics.room_messages.inc()
        self.metrics.child(self.metrics.broker_received_messages, "room").inc()
        self.metrics.child(self.metrics.broker_received_bytes, "room").inc(len(data))
        members = self._rooms.get(room)
        if not members:
            return  # in flight while the last member left
        if isinstance(message, bus.RoomFrame):
            frame = Frame(message.payload)
            delivered = 0
            if message.user_ids:
                wanted = set(message.user_ids)
                for conn in members:
                    if conn.user_id in wanted and conn.offer(frame):
                        delivered += 1
            elif message.exclude_user_ids:
                excluded = set(message.exclude_user_ids)
                for conn in members:
                    if conn.user_id not in excluded and conn.offer(frame):
                        delivered += 1
            else:
                # offer() never mutates the room table (a 4008 close is a task), so the
                # members can be iterated in place.
                for conn in members:
                    if conn.offer(frame):
                        delivered += 1
            if delivered:
                self.metrics.room_deliveries.inc(delivered)
        else:
            if message.payload is not None:
                frame = Frame(message.payload)
                for conn in members:
                    conn.offer(frame)
            for conn in list(members):
                self.leave_room(room, conn)
            if self.on_room_closed is not None:
                self.on_room_closed(room)
