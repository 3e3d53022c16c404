"""This node's sockets by user, fed by the node's one broker subscription.

The hub never awaits a socket: it hands frames to each connection's outbox
(``offer`` never blocks) and lets cursors fetch what the broker did not carry.
Every ``event_position_check_s`` it compares its users' delivered seqs with
PostgreSQL, so a dropped pub/sub message is delivered within that interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

import msgspec

from server.observability.metrics import Metrics
from server.realtime import bus
from server.realtime.frames import EventFrame, Frame
from server.realtime.stream import EventStream, with_seq

log = logging.getLogger(__name__)

POSITION_CHECK_CHUNK = 1000


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
        self._check_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- membership -----------------------------------------------------------------
    def add(self, conn: C) -> None:
        self._by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: C) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]

    def connections(self) -> Iterator[C]:
        for conns in list(self._by_user.values()):
            yield from list(conns)

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    # --- broker input -----------------------------------------------------------------
    def on_bus(self, data: bytes) -> None:
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

    def on_broker_reconnect(self) -> None:
        # Notices may have been lost while the subscription was down.
        self._check_now.set()

    def _on_events(self, message: bus.Events) -> None:
        by_user = self._by_user
        delivered = 0
        for group in message.groups:
            template, seq_at = group.template, group.seq_at
            for user_id, seq in group.targets:
                conns = by_user.get(user_id)
                if not conns:
                    continue
                frame = None
                if template is not None:
                    frame = EventFrame(seq, with_seq(template, seq_at, seq))
                for conn in conns:
                    conn.on_event(seq, frame)
                    delivered += 1
        if delivered:
            self.metrics.child(self.metrics.events_delivered, "live").inc(delivered)

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

    async def check_positions(self) -> None:
        """Fetch every local user's latest seq; start catch-up where a socket is behind."""
        users = list(self._by_user)
        for i in range(0, len(users), POSITION_CHECK_CHUNK):
            chunk = users[i : i + POSITION_CHECK_CHUNK]
            positions = await self.stream.positions(chunk)
            for user_id, last_seq in positions.items():
                for conn in self._by_user.get(user_id, ()):
                    if conn.delivered_seq < last_seq:
                        conn.catch_up(last_seq)
