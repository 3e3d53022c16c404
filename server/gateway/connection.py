"""One WebSocket's state: identity, stream cursor, limits, and its single writer.

Writes go through a bounded outbox measured in bytes: ``offer`` appends and
returns at once (it never awaits), one writer task per connection drains the
outbox to the socket. A client that lets the outbox fill past
``WS_OUTBOX_BYTES`` is closed 4008 at once (it resumes and loses nothing).
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
from server.auth.principal import Principal
from server.gateway.ratelimit import TokenBucket
from server.observability.metrics import Metrics
from server.realtime.cursor import EventFrame, Frame, StreamCursor

log = logging.getLogger("server.gateway")


class Connection:
    def __init__(
        self,
        *,
        id: str,
        ws: web.WebSocketResponse,
        codec: Codec,
        principal: Principal,
        cursor: StreamCursor | None,
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
        self.cursor: StreamCursor = cursor  # type: ignore[assignment]  # set before use
        self.metrics = metrics
        self.bucket = bucket
        self.client = client
        self.remote = remote
        self.opened = time.monotonic()
        self.last_heard = self.opened
        self.last_ping = self.opened
        self.acked_seq = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._limit = outbox_limit
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._opcode = WSMsgType.BINARY if codec.binary else WSMsgType.TEXT
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # --- identity -----------------------------------------------------------------------
    @property
    def expires_at(self) -> datetime | None:
        return self.principal.expires_at

    def replace_principal(self, principal: Principal) -> None:
        self.principal = principal
        self.session_id = principal.session_id

    # --- output -------------------------------------------------------------------------
    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer:{self.id}")

    def send(self, message: Message) -> bool:
        """Encode and queue one message (replies, welcome, pings)."""
        self.metrics.ws_frames_out.labels(message.wire_type()).inc()
        return self._enqueue(self.codec.encode(message))

    def offer(self, frame: Frame) -> bool:
        """Queue an already-encoded frame (ephemeral events shared across sockets)."""
        self.metrics.ws_frames_out.labels("ephemeral").inc()
        return self._enqueue(frame.msgpack if self.codec.binary else frame.json)

    def offer_event(self, frame: EventFrame) -> bool:
        """Queue a durable event (called by this connection's cursor, in seq order)."""
        self.metrics.ws_frames_out.labels("event").inc()
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
        self._queue.append(data)
        self._queued += size
        self._wake.set()
        return True

    async def _write_loop(self) -> None:
        ws, queue, opcode = self.ws, self._queue, self._opcode
        try:
            while True:
                if not queue:
                    if self.close_code is not None:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                data = queue.popleft()
                self._queued -= len(data)
                await ws.send_frame(data, opcode)
            await ws.close(code=self.close_code or 1000, message=self.close_reason.encode())
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-write; the reader notices and cleans up.
            log.debug("writer stopped", extra={"conn": self.id, "error": repr(exc)})

    # --- closing --------------------------------------------------------------------------
    def close_soon(self, code: int, reason: str) -> None:
        """Close after what is already queued has been written (kicks, 4002, 1001)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._wake.set()

    def close_now(self, code: int, reason: str) -> None:
        """Close without flushing (slow consumer): drop the queue, stop the writer."""
        if self.close_code is not None and self._closer is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._queue.clear()
        self._queued = 0
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
        if self.cursor is not None:
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
