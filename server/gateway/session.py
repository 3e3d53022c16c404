"""One authenticated socket from ``welcome`` to close: session start, the read loop,
commands, and the in-band ``auth.refresh``.

Start: the connection joins the hub (and the user is routed to this node) *before*
``last_seq`` is read, so every event committed from then on either arrives live or is
found by the cursor's catch-up; then presence (and the per-user connection cap), the
credential read again (a ban, revoke or role change racing the handshake is either seen
or kicks this node), the ``welcome``, and the cursor starts replaying after
``resume_from`` (or ``last_seq``).

Per connection there is one reader (this task), one command worker and one writer task
(``connection``). The reader never waits for a command: it judges every frame against the
connection's limits (``limits``: frame budget, command bucket, abuse window → 4029),
handles ``pong``, ``ack``, WebSocket pings and bad frames itself, at once, and queues
commands for the worker, which
runs them one at a time, in arrival order. At most ``WS_MAX_PENDING_COMMANDS`` wait
behind the running one; one more is answered ``rate_limited`` at once (and not run). Like
the writer, the worker exists only while there is work (it ends after
``WS_WRITER_IDLE_S`` without commands), so an idle socket holds no task.

Draining (shutdown): no new commands (``unavailable``), queued ones are answered
``unavailable`` too, the running one finishes and replies, then the socket is closed
1001 — while the reader keeps reading until the close handshake is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType

from protocol.base import Command
from protocol.codec import DecodeError
from protocol.codes import CloseCode, ErrorCode
from protocol.session import (
    Ack,
    AuthRefresh,
    AuthRefreshResult,
    Error,
    Hello,
    Ok,
    Pong,
    Welcome,
)
from server.auth.verifier import Verifier
from server.commands import Caller, CommandTable
from server.errors import AppError, Forbidden
from server.gateway.connection import Connection
from server.gateway.errors import close_for, error_reply
from server.gateway.handshake import Opened
from server.gateway.limits import InboundLimits, LimitRules
from server.observability.logging import request_id
from server.observability.metrics import Metrics
from server.realtime.node import Node
from server.resources.outages import REDIS, Outages
from server.settings import Settings

log = logging.getLogger("server.gateway")

PresenceListener = Callable[[str, bool], Awaitable[None]]
"""Called with (user_id, online) when a user's first socket opens anywhere (online) or
their last one closes (offline). Runs as its own task; errors are logged."""

_NODE = os.urandom(2).hex()

QUEUE_FULL_RETRY_S = 1.0
"""``retry_after_s`` of a command refused because the connection's queue is full."""
OVER_BUDGET_RUN = 256
OVER_BUDGET_PAUSE_S = 0.25
"""After ``OVER_BUDGET_RUN`` frames in a row over the frame budget, the socket's reader
pauses this long (back-pressure): aiohttp's queue fills, it stops reading the socket, and
the flooder's frames wait in the kernel and in the client instead of costing this node."""
INVALID_COMMAND = "invalid"
"""The ``type`` label of ``petspark_ws_commands_total`` for a frame with an id that did not
decode (an unknown type, a missing or bad field): the label set stays the protocol's."""
READ_YIELD_EVERY = 64
"""The reader yields to the event loop after this many frames (see ``_read_loop``)."""
_ID_MARKS = {False: (b'"id"', b"\\"), True: (b"id",)}
"""Bytes without which a frame holds no ``id`` key: in JSON (text) the key spelled
``"id"`` or with escapes (``"\\u0069d"``), in MessagePack (binary) the bytes ``id`` after
whatever str header encodes them."""
SHUTDOWN_RETRY_S = 1.0
"""``retry_after_s`` of a command refused because the node is shutting down (reconnect
and retry: another node answers)."""


def _shutting_down(command_id: str) -> Error:
    return Error(id=command_id, code=ErrorCode.UNAVAILABLE,
                 message="server shutting down: reconnect and retry",
                 retry_after_s=SHUTDOWN_RETRY_S)


def new_connection_id() -> str:
    """Sortable by open time (ms), unique across nodes."""
    return f"{int(time.time() * 1000):012x}{_NODE}{secrets.token_hex(4)}"


class Sessions:
    """Serves authenticated sockets on this node."""

    def __init__(self, *, settings: Settings, metrics: Metrics, verifier: Verifier,
                 node: Node, commands: CommandTable, on_presence: PresenceListener,
                 outages: Outages) -> None:
        self.settings = settings
        self.outages = outages
        self.metrics = metrics
        self.verifier = verifier
        self.node = node
        self.hub = node.hub
        self.commands = commands
        self.on_presence = on_presence
        self._listener_tasks: set[asyncio.Task[None]] = set()
        self._limit_rules = LimitRules(
            frames_per_s=settings.ws_frames_per_s, frames_burst=settings.ws_frames_burst,
            commands_per_s=settings.ws_rate_per_s, commands_burst=settings.ws_rate_burst,
            abuse_s=settings.ws_abuse_s,
            abuse_refused_fraction=settings.ws_abuse_refused_fraction)
        metrics.ws_outbox_bytes.set_function(
            lambda: sum(conn.queued_bytes for conn in self.hub.connections()))

    async def stop(self) -> None:
        """Presence listeners hold database connections: end them before pools close."""
        for task in list(self._listener_tasks):
            task.cancel()
        if self._listener_tasks:
            await asyncio.gather(*self._listener_tasks, return_exceptions=True)

    # --- session start and end ----------------------------------------------------------
    async def serve(self, opened: Opened, remote: str | None,
                    transport: asyncio.Transport | None = None) -> None:
        settings, node = self.settings, self.node
        principal, hello = opened.principal, opened.hello
        conn = Connection(
            id=new_connection_id(), ws=opened.ws, codec=opened.codec, principal=principal,
            stream=node.stream, metrics=self.metrics, outbox_limit=settings.ws_outbox_bytes,
            limits=InboundLimits(self._limit_rules),
            client=hello.client, remote=remote, transport=transport,
            close_timeout_s=settings.ws_close_timeout_s,
        )
        del opened  # the socket's parts are the connection's now
        token = request_id.set(conn.id)
        user_id = principal.user_id
        self.hub.add(conn)
        self.metrics.ws_open.inc()
        registered = False
        try:
            # Routed here before the welcome reads last_seq: an event committed meanwhile
            # is either announced to this node or read back by the catch-up.
            await node.user_connected(user_id)
            try:
                live_ids = await node.presence.connected(user_id, conn.id)
                registered = True
            except Exception as exc:  # Redis down: serve anyway; the sweeper's refresh
                # re-adds this socket to presence once Redis is back.
                self.outages.failed(REDIS, exc)
                live_ids = []
            if live_ids == [conn.id]:
                self._presence_changed(user_id, True)
            cap = settings.ws_max_connections_per_user
            if len(live_ids) > cap:
                oldest = tuple(live_ids[: len(live_ids) - cap])
                await node.kick(connection_ids=oldest, code=CloseCode.REPLACED,
                                reason="replaced by a newer connection", of_user=user_id)
            del live_ids  # every socket of the user: not to be kept for this one's life
            try:
                resumed: bool | None = await self._welcome(conn, hello)
            except Exception as exc:
                if self.outages.unavailable(exc) is None:
                    raise
                # PostgreSQL is down: no welcome without last_seq. Come back later.
                resumed = None
                conn.close_soon(CloseCode.TRY_AGAIN_LATER, "database unavailable, try again")
            if resumed is not None:
                log.info("socket open", extra={
                    "user_id": user_id, "session": principal.session_id,
                    "client": hello.client, "codec": conn.codec.name,
                    "resume_from": hello.resume_from, "resumed": resumed, "remote": remote,
                })
            del hello  # like live_ids: not kept for the socket's life
            await self._read_loop(conn)
        except Exception:
            log.exception("socket failed", extra={"user_id": user_id})
            conn.close_now(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            # Cleanup runs to the end even if this handler is cancelled meanwhile (aiohttp
            # cancels it when the client goes away): presence, the running command, the
            # writer, the close's log line and metric.
            ending = asyncio.ensure_future(self._end(conn, registered))
            try:
                await asyncio.shield(ending)
            except asyncio.CancelledError:
                await ending
                raise
            finally:
                request_id.reset(token)

    async def _end(self, conn: Connection, registered: bool) -> None:
        user_id = conn.user_id
        self.hub.remove(conn)
        self.metrics.ws_open.dec()
        with contextlib.suppress(Exception):
            await self.node.user_disconnected(user_id)
        # The reader is done: queued commands are dropped (nobody reads their replies);
        # a running one finishes (it may be mid-transaction).
        worker = conn.end_commands()
        try:
            if registered:
                with contextlib.suppress(Exception):
                    await self._forget_connection(user_id, conn.id)
            if worker is not None:
                with contextlib.suppress(Exception):
                    await worker
        finally:
            await conn.finish()
        # The code this side sent; the peer's own code only when it closed first.
        by_server = conn.close_code is not None
        code = conn.close_code if by_server else conn.ws.close_code
        self.metrics.ws_closes.labels(str(code)).inc()
        log.info("socket closed", extra={
            "user_id": user_id, "close_code": code,
            "closed_by": "server" if by_server else "client",
            "peer_close_code": conn.ws.close_code, "transport_cut": conn.aborted,
            "reason": conn.close_reason or None,
            "duration_s": round(time.monotonic() - conn.opened, 3),
            "delivered_seq": conn.written_seq, "queued_seq": conn.delivered_seq,
        })

    def drain(self, conn: Connection) -> None:
        """Shutdown: no new commands; close 1001 once the running one (if any) replied."""
        if conn.draining or conn.close_code is not None:
            return
        conn.draining = True
        for command in conn.take_queued_commands():
            self._refuse(conn, command.wire_type(), _shutting_down(command.id))
        if not conn.busy:
            conn.close_soon(CloseCode.GOING_AWAY, "server shutting down")
        # else: the worker closes it after the running command's reply (``_work``).

    async def _welcome(self, conn: Connection, hello: Hello) -> bool | None:
        """Send the welcome and start delivery; True when the resume was honoured, None
        when the credential lapsed since the handshake (the socket is closing).

        The credential is read again now that the user is routed here: a ban, revoke or
        role change that committed before this read is seen by it, and one that commits
        after it finds the route, so its kick reaches this node. Checked at the
        handshake only, a socket opening in between would miss both."""
        # Both reads at once (two pooled connections): the check costs no round trip.
        checked, point = await asyncio.gather(
            self.verifier.check_active(conn.principal),
            self.node.stream.resume_point(conn.user_id, hello.resume_from),
            return_exceptions=True)
        if isinstance(checked, AppError):
            conn.close_soon(*close_for(checked))
            return None
        if isinstance(checked, BaseException):
            raise checked
        if isinstance(point, BaseException):
            raise point
        last_seq, resumed = point
        start = hello.resume_from if resumed and hello.resume_from is not None else last_seq
        if hello.resume_from is not None:
            self.metrics.child(self.metrics.ws_resumes,
                               "resumed" if resumed else "not_resumed").inc()
        conn.send(Welcome(
            session_id=conn.id, user_id=conn.user_id, last_seq=last_seq,
            heartbeat_s=self.settings.heartbeat_s, resumed=resumed,
            server_time=datetime.now(UTC),
        ))
        conn.welcomed = True
        conn.cursor.start(start, last_seq)
        return resumed

    async def _forget_connection(self, user_id: str, connection_id: str) -> None:
        try:
            gone = await self.node.presence.disconnected(user_id, connection_id)
        except Exception as exc:  # Redis down: the entry expires with its TTL
            self.outages.failed(REDIS, exc)
            return
        if gone:
            self._presence_changed(user_id, False)

    def _presence_changed(self, user_id: str, online: bool) -> None:
        """Run the presence listener (e.g. tell matched users) off the socket's path."""
        task = asyncio.create_task(self._run_listener(user_id, online))
        self._listener_tasks.add(task)
        task.add_done_callback(self._listener_tasks.discard)

    async def _run_listener(self, user_id: str, online: bool) -> None:
        try:
            await self.on_presence(user_id, online)
        except Exception as exc:  # an outage is noted once; anything else is a bug
            if self.outages.unavailable(exc) is None:
                log.exception("presence listener failed", extra={"user_id": user_id})

    # --- reading ----------------------------------------------------------------------------
    async def _read_loop(self, conn: Connection) -> None:
        """Read until the socket closes; never waits for a command (see the module doc).

        Every frame takes a token from the frame budget before any other work; one over
        it costs a clock read, the buckets and a counter (it is decoded only if it may be
        a command, which is answered). The only awaits are the read itself, the answer to
        a WebSocket ping within the budget, a yield every ``READ_YIELD_EVERY`` frames
        (aiohttp hands over frames it has already buffered without suspending, so a
        flooding socket would otherwise hold the event loop while others wait) and, after
        ``OVER_BUDGET_RUN`` frames in a row over the budget, a pause of this reader only
        (``OVER_BUDGET_PAUSE_S``): the flood then waits in TCP buffers, not in our CPU."""
        ws = conn.ws
        receive = ws.receive
        limits = conn.limits
        frames = over = 0
        while True:
            msg = await receive()
            kind = msg.type
            now = time.monotonic()
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                conn.last_heard = now
                wait = limits.take_frame(now)
                if wait == 0.0:
                    over = 0
                    self._on_frame(conn, msg.data, kind is WSMsgType.BINARY, now)
                else:
                    over += 1
                    self._over_budget(conn, msg.data, kind is WSMsgType.BINARY, now, wait)
            elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                # autoping is off (handshake): a ping is answered here, within the frame
                # budget only. WebSocket-level frames do not count as heard (PROTOCOL §5).
                ping = kind is WSMsgType.PING
                self.metrics.child(self.metrics.ws_frames_in,
                                   "ws.ping" if ping else "ws.pong").inc()
                if limits.take_frame(now) != 0.0:
                    over += 1
                    self._over_budget(conn, None, False, now, 0.0)
                else:
                    over = 0
                    if self._take(conn, now, None, answered=False) and ping:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await ws.pong(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return
            # After a close was asked, keep reading until the close handshake completes.
            if over >= OVER_BUDGET_RUN and conn.close_code is None:
                over = frames = 0
                await asyncio.sleep(OVER_BUDGET_PAUSE_S)
                continue
            frames += 1
            if frames >= READ_YIELD_EVERY:
                frames = 0
                await asyncio.sleep(0)

    def _on_frame(self, conn: Connection, data: bytes, binary: bool, now: float) -> None:
        """A text or binary frame within the frame budget."""
        metrics = self.metrics
        if binary != conn.codec.binary:
            metrics.child(metrics.ws_frames_in, "invalid").inc()
            if self._take(conn, now, None):
                conn.reply(Error(id=None, code=ErrorCode.BAD_REQUEST,
                                message=f"{conn.codec.name} takes "
                                        f"{'binary' if conn.codec.binary else 'text'} frames"))
            return
        try:
            message = conn.codec.decode_client(data)
        except DecodeError as exc:
            metrics.child(metrics.ws_frames_in, "invalid").inc()
            tag = None if exc.id is None else INVALID_COMMAND
            if self._take(conn, now, exc.id, tag=tag):
                self._refuse(conn, tag, Error(id=exc.id, code=exc.code, message=exc.message,
                                              field=exc.field))
            return
        tag = message.wire_type()
        metrics.child(metrics.ws_frames_in, tag).inc()
        if isinstance(message, Pong):
            self._take(conn, now, None, answered=False)
            return
        if isinstance(message, Ack):
            if not self._take(conn, now, None, answered=False):
                return
            # Only what this socket was sent can have been processed; the highest ack per
            # user goes to every node's push worker (batched, never awaited here).
            seq = min(message.seq, conn.delivered_seq)
            if seq > conn.acked_seq:
                conn.acked_seq = seq
                self.node.acks.record(conn.user_id, seq)
            return
        if isinstance(message, Hello):
            if self._take(conn, now, None):
                conn.reply(Error(id=None, code=ErrorCode.BAD_REQUEST,
                                message="hello: already sent on this connection"))
            return
        assert isinstance(message, Command)
        if not self._take(conn, now, message.id, tag=tag):
            return
        self._submit(conn, message)

    def _take(self, conn: Connection, now: float, command_id: str | None, *,
              answered: bool = True, tag: str | None = None) -> bool:
        """A frame within the frame budget: True when it may be handled.

        A frame that gets an answer (``answered``: commands, bad frames, a second hello)
        also takes a token from the command bucket; its refusal is answered
        ``rate_limited`` with ``retry_after_s`` (counted as command ``tag``'s when there
        is one). Every frame feeds the abuse window."""
        wait = conn.limits.take_command(now) if answered else 0.0
        refused = wait != 0.0
        if refused:
            self.metrics.child(self.metrics.ws_frames_refused, "commands").inc()
        if self._abusive(conn, now, refused):
            return False
        if not refused:
            return True
        self._refuse(conn, tag, Error(id=command_id, code=ErrorCode.RATE_LIMITED,
                                      message="too many commands", retry_after_s=round(wait, 3)))
        return False

    def _over_budget(self, conn: Connection, data: bytes | None, binary: bool, now: float,
                     wait: float) -> None:
        """A frame over the frame budget: dropped. Only a command is answered
        (``rate_limited``, each command gets its one reply — a frame with an ``id``
        that fails to decode too); a flood of anything else is never amplified into
        output. A frame without an ``id`` key cannot be a command the client could match
        a reply to, so it is not even decoded."""
        self.metrics.child(self.metrics.ws_frames_refused, "frames").inc()
        if self._abusive(conn, now, True) or data is None:
            return
        codec = conn.codec
        if binary != codec.binary or not any(mark in data for mark in _ID_MARKS[binary]):
            return
        try:
            message = codec.decode_client(data)
        except DecodeError as exc:
            command_id, tag = exc.id, INVALID_COMMAND  # a bad command with an id: answered
        else:
            if not isinstance(message, Command):
                return
            command_id, tag = message.id, message.wire_type()
        if command_id is not None:
            self._refuse(conn, tag, Error(id=command_id, code=ErrorCode.RATE_LIMITED,
                                          message="too many frames",
                                          retry_after_s=round(wait, 3)))

    def _refuse(self, conn: Connection, tag: str | None, reply: Error) -> None:
        """Answer a frame at once (not run), counted as command ``tag``'s outcome."""
        if tag is not None:
            self.metrics.child2(self.metrics.ws_commands, tag, reply.code.value).inc()
        conn.reply(reply)

    def _abusive(self, conn: Connection, now: float, refused: bool) -> bool:
        """Count the frame in the abuse window; True (and closing 4029) when the window
        it ended was abusive."""
        judged = conn.limits.count(now, refused)
        if judged is None:
            return False
        if conn.close_code is None:
            log.warning("socket closed 4029: rate limit abuse", extra={
                "user_id": conn.user_id, "refused_fraction": round(judged, 3),
                "window_s": self.settings.ws_abuse_s})
        conn.close_soon(CloseCode.RATE_LIMIT_ABUSE, "rate limit abuse")
        return True

    # --- commands -------------------------------------------------------------------------
    def _submit(self, conn: Connection, command: Command) -> None:
        """Queue a command for the connection's worker (started on demand)."""
        if conn.draining:
            self._refuse(conn, command.wire_type(), _shutting_down(command.id))
            return
        limit = self.settings.ws_max_pending_commands
        # Waiting behind the running one (the first queued is the next to run when
        # none is running yet).
        if conn.pending_commands + int(conn.busy) > limit:
            self._refuse(conn, command.wire_type(), Error(
                id=command.id, code=ErrorCode.RATE_LIMITED,
                message=f"too many commands waiting: at most {limit} behind the running one",
                retry_after_s=QUEUE_FULL_RETRY_S))
            return
        conn.submit(command)
        if conn.worker is None:
            conn.worker = asyncio.create_task(self._work(conn), name=f"ws-commands:{conn.id}")

    async def _work(self, conn: Connection) -> None:
        """The connection's command worker: one command at a time, in arrival order."""
        try:
            while (command := await conn.next_command()) is not None:
                await self._run_command(conn, command)
                if conn.draining:
                    conn.close_soon(CloseCode.GOING_AWAY, "server shutting down")
        finally:
            conn.worker = None

    async def _run_command(self, conn: Connection, command: Command) -> None:
        tag = command.wire_type()
        started = time.perf_counter()
        conn.busy = True
        # Events this command appends to its caller go out after its reply (PROTOCOL §3).
        conn.hold()
        try:
            reply = await self._execute(conn, command, tag)
            self.metrics.child2(self.metrics.ws_commands, tag,
                                "ok" if isinstance(reply, Ok) else reply.code.value).inc()
            await conn.send_reply(reply)
        finally:
            conn.release()
            conn.busy = False
            self.metrics.child(self.metrics.ws_command_latency, tag).observe(
                time.perf_counter() - started)

    async def _execute(self, conn: Connection, command: Command, tag: str) -> Ok | Error:
        """The command's one reply."""
        try:
            if isinstance(command, AuthRefresh):
                result: Any = await self._auth_refresh(conn, command)
            else:
                handler = self.commands.get(type(command))
                if handler is None:
                    return Error(id=command.id, code=ErrorCode.BAD_REQUEST,
                                 message=f"type: '{tag}' is not supported by this server yet",
                                 field="type")
                caller = Caller(principal=conn.principal, connection_id=conn.id, memo=conn.memo)
                result = await handler(caller, command)
            return Ok(id=command.id, result=result)
        except Exception as exc:
            return error_reply(command.id, exc, self.outages,
                               fields=type(command).__struct_encode_fields__, command=tag,
                               user_id=conn.user_id)

    async def _auth_refresh(self, conn: Connection, command: AuthRefresh) -> AuthRefreshResult:
        principal = await self.verifier.from_bearer(command.token)
        if principal.user_id != conn.user_id:
            raise Forbidden("token: belongs to another user")
        conn.replace_principal(principal)
        expires = principal.expires_at or datetime.now(UTC)
        return AuthRefreshResult(expires_at=expires)

