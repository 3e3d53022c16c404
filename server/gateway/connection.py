"""One WebSocket's state: identity, stream cursor, limits, its single writer and its
command queue.

Writes go through a bounded outbox measured in bytes: ``offer`` appends and
returns at once (it never awaits); the connection's one writer task drains the
outbox to the socket. The writer exists only while there is output: after
one-off frames it ends at once, after command replies it waits ~1 s for the
next one (the sweeper ends it), so an idle socket holds no task (less memory
per connection) and request/reply traffic does not start a task per reply.

Limits of the outbox (``WS_OUTBOX_BYTES``):

- live traffic (replies, pings, ephemeral events, live durable events) that would
  take it past the limit closes the socket 4008 at once (nothing queued is sent; the
  client resumes and loses nothing). A frame always fits an *empty* outbox, so one
  event larger than the limit is not a slow consumer;
- catch-up (``put_caught_up``: durable events read from PostgreSQL) never overflows it:
  past half the limit it waits (``room``) until the writer has drained it, so a client
  that reads at any steady speed catches up, and live traffic keeps the other half.

While a command runs (``hold``), durable events are held back and queued right after
its reply (``release``): the caller's ``ok`` always comes before the events its own
command appended (PROTOCOL §3), whichever path (broker, position check, catch-up)
brought them.

Closing: the code this side sends is ``close_code``; it is what logs and metrics
record. A socket that has not finished closing ``WS_CLOSE_TIMEOUT_S`` after the close
was asked (a client that stopped reading: its TCP buffer is full, so even the close
frame cannot be written) has its transport cut, counted in
``petspark_ws_transport_aborts_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import datetime

from aiohttp import WSMsgType, web

from protocol.base import Command, Message
from protocol.codec import Codec
from protocol.codes import CloseCode
from server.gateway.batch import BATCH_BYTES, take_batch
from server.gateway.limits import InboundLimits
from server.observability.metrics import Metrics
from server.principal import Principal
from server.realtime.cursor import StreamCursor
from server.realtime.frames import EventFrame, Frame
from server.realtime.memo import Memo
from server.realtime.stream import EventStream

log = logging.getLogger("server.gateway")


class Connection:
    # Slots: thousands of idle sockets per node, each instance without a __dict__.
    __slots__ = (
        "_abort_handle", "_closer", "_commands", "_ended", "_enqueued", "_held", "_holding",
        "_last_write", "_limit", "_linger", "_memo", "_opcode", "_queue", "_queued", "_room",
        "_seqs", "_waiter", "_work_waiter", "_writer", "_written", "aborted", "acked_seq",
        "busy", "client", "close_code", "close_reason", "close_timeout_s", "codec",
        "cursor", "draining", "id", "last_heard", "last_ping", "last_work", "limits", "metrics",
        "opened", "principal", "remote", "session_id", "transport", "user_id", "welcomed",
        "worker", "written_seq", "ws",
    )

    def __init__(
        self,
        *,
        id: str,
        ws: web.WebSocketResponse,
        codec: Codec,
        principal: Principal,
        stream: EventStream,
        metrics: Metrics,
        outbox_limit: int,
        limits: InboundLimits,
        client: str | None,
        remote: str | None,
        transport: asyncio.Transport | None = None,
        close_timeout_s: float = 5.0,
    ) -> None:
        self.id = id
        self.ws = ws
        self.codec = codec
        self.principal = principal
        self.user_id = principal.user_id
        self.session_id = principal.session_id
        self.cursor = StreamCursor(stream, principal.user_id, self)
        self.metrics = metrics
        self.limits = limits
        self.client = client
        self.remote = remote
        self.transport = transport
        self.close_timeout_s = close_timeout_s
        self.opened = time.monotonic()
        self.last_heard = self.opened
        self.last_ping = self.opened
        self.acked_seq = 0
        # Set once the welcome is queued: ephemeral events offered earlier (the socket
        # is in the hub before its welcome) are dropped so the welcome is always first.
        self.welcomed = False
        self.close_code: int | None = None
        """The close code this side sent (or is sending); None while open."""
        self.close_reason = ""
        self.aborted = False
        """True once the transport was cut because the close did not finish in time."""
        self.written_seq = 0
        """The highest durable seq written to the socket (handed to the kernel)."""
        self._limit = outbox_limit
        # Created on demand and dropped when drained: an empty deque is 760 bytes.
        self._queue: deque[bytes] | None = None
        self._queued = 0
        # (item number, seq) of durable events in the queue, and how many items were
        # ever queued / written: the writer advances written_seq as it writes them.
        self._seqs: deque[tuple[int, int, float]] | None = None
        self._enqueued = 0
        self._written = 0
        self._holding = False
        self._held: list[tuple[bytes, int, float]] | None = None
        self._room: asyncio.Future[None] | None = None
        self._opcode = WSMsgType.BINARY if codec.binary else WSMsgType.TEXT
        self._writer: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._linger = False
        self._last_write = 0.0
        self._closer: asyncio.Task[None] | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        # Commands waiting for this connection's worker (see server.gateway.session).
        self._commands: deque[Command] | None = None
        self._work_waiter: asyncio.Future[bool] | None = None
        self.worker: asyncio.Task[None] | None = None
        self._ended = False
        self.busy = False
        """A command of this connection is running."""
        self.draining = False
        """Shutting down: no new commands; closed 1001 once the running one has replied."""
        self.last_work = 0.0
        self._memo: Memo | None = None

    # --- identity -----------------------------------------------------------------------
    @property
    def expires_at(self) -> datetime | None:
        return self.principal.expires_at

    def replace_principal(self, principal: Principal) -> None:
        self.principal = principal
        self.session_id = principal.session_id

    # --- durable events (called by the hub; delivered through the cursor, in seq order) -----
    @property
    def delivered_seq(self) -> int:
        """The highest durable seq queued to this socket (the hub's position check)."""
        return self.cursor.delivered

    @property
    def memo(self) -> Memo:
        """Values this connection's commands keep between commands (created on first use:
        an idle socket has none). Durable events of the user drop what they change."""
        if self._memo is None:
            self._memo = Memo()
        return self._memo

    def on_event(self, seq: int, frame: EventFrame | None) -> None:
        if self._memo is not None:
            self._memo.on_event(frame.json if frame is not None else None)
        self.cursor.on_live(seq, frame)

    def catch_up(self, last_seq: int) -> None:
        self.cursor.catch_up(last_seq)

    @property
    def queued_bytes(self) -> int:
        """Bytes of encoded frames waiting in the outbox (held events included)."""
        return self._queued

    # --- commands (the queue; the worker that runs them is the session's) ------------------
    @property
    def pending_commands(self) -> int:
        """Commands waiting to run (not counting the one running)."""
        return len(self._commands) if self._commands is not None else 0

    def submit(self, command: Command) -> None:
        """Queue a command for this connection's worker (the caller bounds the queue)."""
        if self._commands is None:
            self._commands = deque()
        self._commands.append(command)
        waiter, self._work_waiter = self._work_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def take_queued_commands(self) -> list[Command]:
        """Remove and return every command still waiting (draining)."""
        queued = list(self._commands or ())
        self._commands = None
        return queued

    async def next_command(self) -> Command | None:
        """The next command for the worker; None when the worker should end (idle, as
        the sweeper says, or closing)."""
        while True:
            if self._commands:
                return self._commands.popleft()
            if self.close_code is not None or self.draining or self._ended:
                return None
            self.last_work = time.monotonic()
            waiter = self._work_waiter = asyncio.get_running_loop().create_future()
            if not await waiter and not self._commands:
                self._commands = None  # idle: drop the deque with the worker
                return None

    def end_commands(self) -> asyncio.Task[None] | None:
        """The reader is done: drop waiting commands, let the worker end after the running
        one; returns the worker (to await), if any."""
        self._ended = True
        self._commands = None
        waiter, self._work_waiter = self._work_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        return self.worker

    def release_idle_worker(self, now: float, idle_s: float) -> None:
        """Called by the sweeper: end the command worker of a socket quiet for ``idle_s``."""
        waiter = self._work_waiter
        if waiter is not None and now - self.last_work >= idle_s:
            self._work_waiter = None
            if not waiter.done():
                waiter.set_result(False)

    # --- output -------------------------------------------------------------------------
    def send(self, message: Message) -> bool:
        """Encode and queue one message (welcome, pings)."""
        self.metrics.child(self.metrics.ws_frames_out, message.wire_type()).inc()
        return self._enqueue(self.codec.encode(message))

    def reply(self, message: Message) -> bool:
        """Queue a reply to a command. The writer then stays for the next one instead
        of ending at once: request/reply traffic does not start a task per reply."""
        self._linger = True
        return self.send(message)

    async def send_reply(self, message: Message) -> None:
        """A command's reply, from the command worker: written straight to the socket when
        nothing is queued ahead of it (the usual case — no writer task wakes per reply),
        else queued behind what is. A frame is handed to the transport synchronously, so
        it can never overtake one written before it."""
        if self._queue or self.close_code is not None:
            self.reply(message)
            return
        self.metrics.child(self.metrics.ws_frames_out, message.wire_type()).inc()
        try:
            await self.ws.send_frame(self.codec.encode(message), self._opcode)
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away; the reader notices and cleans up.
            log.debug("reply not written", extra={"conn": self.id, "error": repr(exc)})

    def offer(self, frame: Frame) -> bool:
        """Queue an already-encoded frame (ephemeral events shared across sockets)."""
        if not self.welcomed:
            return False
        self.metrics.child(self.metrics.ws_frames_out, "ephemeral").inc()
        return self._enqueue(frame.msgpack if self.codec.binary else frame.json)

    def offer_event(self, frame: EventFrame) -> bool:
        """Queue a live durable event (called by this connection's cursor, in seq order)."""
        metrics = self.metrics
        metrics.child(metrics.ws_frames_out, "event").inc()
        if not self._enqueue(frame.msgpack if self.codec.binary else frame.json, frame.seq,
                             frame.committed_at):
            return False
        metrics.child(metrics.events_delivered, "live").inc()
        return True

    def put_caught_up(self, seq: int, payload: bytes) -> bool | None:
        """Queue a durable event read back for catch-up if the outbox has room (below half
        its limit, or empty): True once queued, None when there is no room yet (await
        ``room``, then offer it again), False once the socket is closing. Synchronous: a
        catch-up of many events costs no await per event."""
        data = EventFrame(seq, payload).msgpack if self.codec.binary else payload
        queued = self._queued
        if queued and queued + len(data) > self._limit // 2:
            return None if self.close_code is None else False
        if self._memo is not None:  # catch-up finds events whose notice was dropped
            self._memo.on_event(payload)
        return self._enqueue(data, seq)

    async def room(self) -> bool:
        """After ``put_caught_up`` found no room: wait until the writer has drained the
        outbox to a quarter of its limit (or empty); False once the socket is closing."""
        if self._queued and self.close_code is None:
            room = self._room = asyncio.get_running_loop().create_future()
            await room
        return self.close_code is None

    def caught_up(self, count: int) -> None:
        """``count`` events were queued by catch-up (counted once per batch)."""
        metrics = self.metrics
        metrics.child(metrics.ws_frames_out, "event").inc(count)
        metrics.child(metrics.events_delivered, "replayed").inc(count)

    def send_raw(self, data: bytes) -> bool:
        """Queue bytes already encoded for this connection's codec."""
        return self._enqueue(data)

    def hold(self) -> None:
        """A command starts: hold durable events back until its reply is queued."""
        self._holding = True

    def release(self) -> None:
        """The command's reply is queued: send the durable events held meanwhile."""
        self._holding = False
        held, self._held = self._held, None
        if not held or self.close_code is not None:
            return
        for data, seq, committed_at in held:
            self._push(data, seq, committed_at)
        self._kick_writer()

    def _enqueue(self, data: bytes, seq: int = 0, committed_at: float = 0.0) -> bool:
        if self.close_code is not None:
            return False
        size = len(data)
        # A frame always fits an empty outbox: the limit bounds what waits behind it.
        if self._queued and self._queued + size > self._limit:
            self.metrics.ws_outbox_overflows.inc()
            self.close_now(CloseCode.SLOW_CONSUMER, "slow consumer")
            return False
        if seq and self._holding:
            if self._held is None:
                self._held = []
            self._held.append((data, seq, committed_at))
            self._queued += size
            return True
        self._queued += size
        self._push(data, seq, committed_at)
        self._kick_writer()
        return True

    def _push(self, data: bytes, seq: int, committed_at: float = 0.0) -> None:
        """Append to the queue (its bytes are counted in ``_queued`` already)."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._enqueued += 1
        if seq:
            if self._seqs is None:
                self._seqs = deque()
            self._seqs.append((self._enqueued, seq, committed_at))

    def _kick_writer(self) -> None:
        if self._writer is None:
            self._start_writer()
        elif self._waiter is not None:
            self._wake_writer(True)

    def _wake_writer(self, more: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(more)

    def release_idle_writer(self, now: float, idle_s: float) -> None:
        """Called by the node's sweeper: end the writer of a socket quiet for ``idle_s``."""
        if self._waiter is not None and now - self._last_write >= idle_s:
            self._wake_writer(False)

    def _start_writer(self) -> None:
        self._writer = asyncio.create_task(self._drain(), name=f"ws-writer:{self.id}")

    async def _drain(self) -> None:
        """The connection's one writer. It waits for more while the socket is busy and
        ends once it has been idle for a while (the sweeper says when), so an idle
        socket holds no task. Closes the socket when a close was asked."""
        ws, opcode = self.ws, self._opcode
        lag = self.metrics.event_delivery_lag
        loop = asyncio.get_running_loop()
        low = self._limit // 4
        try:
            while True:
                while (queue := self._queue):
                    transport = self.transport
                    if (len(queue) > 1 and transport is not None and not ws.closed
                            and not transport.is_closing()
                            and transport.get_write_buffer_size() < BATCH_BYTES):
                        # A run of frames (catch-up, a burst): one write (see ``batch``).
                        blob, count, size = take_batch(queue, opcode)
                        self._queued -= size
                        transport.write(blob)
                        self._written += count
                    else:
                        data = queue.popleft()
                        self._queued -= len(data)
                        await ws.send_frame(data, opcode)
                        self._written += 1
                    seqs = self._seqs
                    while seqs and seqs[0][0] <= self._written:
                        _, self.written_seq, committed_at = seqs.popleft()
                        if committed_at:  # a live event: commit → written to the socket
                            lag.observe(max(0.0, time.time() - committed_at))
                    if self._room is not None and self._queued <= low:
                        self._wake_room()
                if self.close_code is not None:
                    await ws.close(code=self.close_code, message=self.close_reason.encode())
                    return
                if not self._linger:
                    return  # one-off output (welcome, ping, an event): no task kept
                self._linger = False
                self._last_write = time.monotonic()
                waiter = self._waiter = loop.create_future()
                if not await waiter and not self._queue:
                    return  # idle: release the task
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-write; the reader notices and cleans up.
            log.debug("writer stopped", extra={"conn": self.id, "error": repr(exc)})
        finally:
            # No await between the last empty-queue check and here: an offer() either
            # landed before it (and was written) or sees None and starts a writer.
            self._writer = None
            self._waiter = None
            if not self._queue:
                self._queue = None
            self._wake_room()

    def _wake_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    # --- closing --------------------------------------------------------------------------
    def close_soon(self, code: int, reason: str) -> None:
        """Close after what is already queued has been written (kicks, 4002, 1001)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._closing()
        self._kick_writer()

    def close_now(self, code: int, reason: str) -> None:
        """Close without flushing (slow consumer): drop the queue, stop the writer."""
        if self._closer is not None:
            return
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._queue = None
        self._seqs = None
        self._held = None
        self._queued = 0
        self._waiter = None
        if self._writer is not None:
            self._writer.cancel()
        self._closing()
        self._closer = asyncio.create_task(self._close_socket(), name=f"ws-close:{self.id}")

    def _closing(self) -> None:
        """A close was asked: wake whoever waits on this socket, and bound the close."""
        self._wake_room()
        waiter, self._work_waiter = self._work_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(False)
        if self._abort_handle is None:
            self._abort_handle = asyncio.get_running_loop().call_later(
                self.close_timeout_s, self._abort)

    def _abort(self) -> None:
        """The close did not finish in time (the client stopped reading, so not even the
        close frame gets through): cut the transport; the reader then ends."""
        self._abort_handle = None
        transport = self.transport
        if transport is None:
            return
        self.aborted = True
        self.metrics.child(self.metrics.ws_transport_aborts, str(self.close_code)).inc()
        log.info("socket transport cut: the close did not finish in time", extra={
            "conn": self.id, "user_id": self.user_id, "close_code": self.close_code,
            "queued_bytes": self._queued, "timeout_s": self.close_timeout_s})
        transport.abort()

    async def _close_socket(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
            await self.ws.close(code=self.close_code or 1000,
                                message=self.close_reason.encode())

    async def finish(self) -> None:
        """Called once the reader is done: stop this connection's background tasks.

        A close this side started may still be finishing (the writer closing the
        transport): it gets what is left of ``close_timeout_s``; a close the client
        started needs nothing more from the writer.
        """
        self.cursor.cancel()
        self._wake_room()
        for task in (self._writer, self._closer):
            if task is None or task.done():
                continue
            if self.close_code is not None and self._abort_handle is not None:
                remaining = self._abort_handle.when() - asyncio.get_running_loop().time()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), timeout=max(remaining, 0))
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
