"""One WebSocket's state: identity, stream cursor, limits, and its single writer.

Writes go through a bounded outbox measured in bytes: ``offer`` appends and
returns at once (it never awaits); the connection's one writer task drains the
outbox to the socket. The writer exists only while there is output: after
one-off frames it ends at once, after command replies it waits ~1 s for the
next one (the sweeper ends it), so an idle socket holds no task (less memory
per connection) and request/reply traffic does not start a task per reply.
A client that lets the outbox fill past ``WS_OUTBOX_BYTES`` is closed 4008 at
once (it resumes and loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import datetime

from aiohttp import WSMsgType, web

from protocol.base import Message
from protocol.codec import Codec
from protocol.codes import CloseCode
from server.gateway.limits import TokenBucket
from server.observability.metrics import Metrics
from server.principal import Principal
from server.realtime.cursor import StreamCursor
from server.realtime.frames import EventFrame, Frame
from server.realtime.stream import EventStream

log = logging.getLogger("server.gateway")


class Connection:
    # Slots: thousands of idle sockets per node, each instance without a __dict__.
    __slots__ = (
        "_closer", "_last_write", "_limit", "_linger", "_opcode", "_queue", "_queued", "_waiter",
        "_writer", "acked_seq", "bucket",
        "client", "close_code", "close_reason", "codec", "cursor", "id", "last_heard",
        "last_ping", "metrics", "opened", "principal", "remote", "session_id", "user_id",
        "welcomed", "ws",
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
        bucket: TokenBucket,
        client: str | None,
        remote: str | None,
    ) -> None:
        self.id = id
        self.ws = ws
        self.codec = codec
        self.principal = principal
        self.user_id = principal.user_id
        self.session_id = principal.session_id
        self.cursor = StreamCursor(stream, principal.user_id, self)
        self.metrics = metrics
        self.bucket = bucket
        self.client = client
        self.remote = remote
        self.opened = time.monotonic()
        self.last_heard = self.opened
        self.last_ping = self.opened
        self.acked_seq = 0
        # Set once the welcome is queued: ephemeral events offered earlier (the socket
        # is in the hub before its welcome) are dropped so the welcome is always first.
        self.welcomed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._limit = outbox_limit
        # Created on demand and dropped when drained: an empty deque is 760 bytes.
        self._queue: deque[bytes] | None = None
        self._queued = 0
        self._opcode = WSMsgType.BINARY if codec.binary else WSMsgType.TEXT
        self._writer: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[bool] | None = None
        self._linger = False
        self._last_write = 0.0
        self._closer: asyncio.Task[None] | None = None

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
        return self.cursor.delivered

    def on_event(self, seq: int, frame: EventFrame | None) -> None:
        self.cursor.on_live(seq, frame)

    def catch_up(self, last_seq: int) -> None:
        self.cursor.catch_up(last_seq)

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

    def offer(self, frame: Frame) -> bool:
        """Queue an already-encoded frame (ephemeral events shared across sockets)."""
        if not self.welcomed:
            return False
        self.metrics.child(self.metrics.ws_frames_out, "ephemeral").inc()
        return self._enqueue(frame.msgpack if self.codec.binary else frame.json)

    def offer_event(self, frame: EventFrame) -> bool:
        """Queue a durable event (called by this connection's cursor, in seq order)."""
        self.metrics.child(self.metrics.ws_frames_out, "event").inc()
        return self._enqueue(frame.msgpack if self.codec.binary else frame.json)

    def send_raw(self, data: bytes) -> bool:
        """Queue bytes already encoded for this connection's codec."""
        return self._enqueue(data)

    def _enqueue(self, data: bytes) -> bool:
        if self.close_code is not None:
            return False
        size = len(data)
        if self._queued + size > self._limit:
            self.metrics.ws_outbox_overflows.inc()
            self.close_now(CloseCode.SLOW_CONSUMER, "slow consumer")
            return False
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._queued += size
        if self._writer is None:
            self._start_writer()
        elif self._waiter is not None:
            self._wake_writer(True)
        return True

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
        loop = asyncio.get_running_loop()
        try:
            while True:
                while (queue := self._queue):
                    data = queue.popleft()
                    self._queued -= len(data)
                    await ws.send_frame(data, opcode)
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

    # --- closing --------------------------------------------------------------------------
    def close_soon(self, code: int, reason: str) -> None:
        """Close after what is already queued has been written (kicks, 4002, 1001)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if self._writer is None:
            self._start_writer()
        else:
            self._wake_writer(True)

    def close_now(self, code: int, reason: str) -> None:
        """Close without flushing (slow consumer): drop the queue, stop the writer."""
        if self.close_code is not None and self._closer is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._queue = None
        self._queued = 0
        self._waiter = None
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.create_task(self._close_socket(), name=f"ws-close:{self.id}")

    async def _close_socket(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
            await self.ws.close(code=self.close_code or 1000,
                                message=self.close_reason.encode())

    async def finish(self) -> None:
        """Called once the reader is done: stop this connection's background tasks.

        A close this side started is still in its handshake (the writer waits for
        the client's close frame): let it finish briefly instead of cutting the
        transport, so the client sees our close code rather than 1006.
        """
        self.cursor.cancel()
        for task in (self._writer, self._closer):
            if task is None or task.done():
                continue
            if self.close_code is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), timeout=2)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
