"""Per-connection delivery of one user's durable stream: strictly in seq order, each once.

Live notices arrive from the broker in any order, possibly with holes (pub/sub
drops), and without payload for large fan-outs. The cursor sends a live event
straight through only when it is the next seq; anything else raises the
cursor's target and one catch-up task reads the missing seqs from PostgreSQL.
Because a user's seqs commit in order (see ``stream``), reading ``seq >
delivered`` never skips an event that commits later.

Catch-up is paced by the socket: events read back are queued while the outbox has room
(``EventSink.put_caught_up``, no await per event) and wait for it otherwise
(``EventSink.room``), so however many events a device missed, it gets them as fast as it
reads them and a slow reader is never taken for a stuck one. One query reads up to
``READ_BATCH`` (1,000) events as stored, already encoded: the payload bytes go to the
socket as they are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from server.realtime.frames import EventFrame
from server.realtime.stream import READ_BATCH, EventStream

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def offer_event(self, frame: EventFrame) -> bool:
        """Queue a live frame for the socket now; False once the socket is closing."""

    def put_caught_up(self, seq: int, payload: bytes) -> bool | None:
        """Queue a caught-up event if the socket has room: True if queued, None if there is
        no room yet (await ``room`` and offer it again), False once closing."""

    async def room(self) -> bool:
        """Wait for room after ``put_caught_up`` found none; False once closing."""

    def caught_up(self, count: int) -> None:
        """``count`` caught-up events were queued (metrics)."""


class StreamCursor:
    __slots__ = ("_started", "_task", "delivered", "sink", "stream", "target", "user_id")

    def __init__(self, stream: EventStream, user_id: str, sink: EventSink) -> None:
        self.stream = stream
        self.user_id = user_id
        self.sink = sink
        # Nothing is delivered before ``start``; live notices meanwhile only raise the
        # target, so catch-up finds them.
        self.delivered = -1
        self.target = -1
        self._started = False
        self._task: asyncio.Task[None] | None = None

    def start(self, after: int, known_last_seq: int) -> None:
        """Begin delivering (after the welcome is queued): every seq > ``after``, replaying
        up to at least ``known_last_seq`` from the database."""
        self.delivered = after
        self._started = True
        self.catch_up(known_last_seq)

    def on_live(self, seq: int, frame: EventFrame | None) -> None:
        if seq <= self.delivered:
            return  # already delivered (duplicate or replayed)
        if (self._started and self._task is None and frame is not None
                and seq == self.delivered + 1):
            self._emit(frame)
            return
        self.catch_up(seq)

    def catch_up(self, target: int) -> None:
        if target > self.target:
            self.target = target
        if self._started and self._task is None and self.delivered < self.target:
            self._task = asyncio.create_task(self._fill(), name=f"catch-up:{self.user_id}")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def catching_up(self) -> bool:
        return self._task is not None

    def _emit(self, frame: EventFrame) -> bool:
        if not self.sink.offer_event(frame):
            return False
        self.delivered = frame.seq
        return True

    async def _fill(self) -> None:
        try:
            while self.delivered < self.target:
                rows = await self.stream.read_after(self.user_id, self.delivered, READ_BATCH)
                if not rows:
                    # Announced but not visible yet (e.g. a read replica lagging): the
                    # next position check retries.
                    return
                if rows[0][0] != self.delivered + 1:
                    log.warning(
                        "events pruned before delivery; skipping ahead",
                        extra={"user_id": self.user_id, "from": self.delivered,
                               "to": rows[0][0] - 1},
                    )
                sink = self.sink
                queued = 0
                try:
                    for seq, payload in rows:
                        while (put := sink.put_caught_up(seq, payload)) is None:
                            if not await sink.room():
                                return
                        if not put:
                            return
                        self.delivered = seq
                        queued += 1
                finally:
                    sink.caught_up(queued)
                if self.delivered > self.target:
                    self.target = self.delivered
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # DB outage: the position check tries again later
            self.stream.failed("catch-up", exc, user_id=self.user_id)
        finally:
            self._task = None
