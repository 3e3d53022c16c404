"""One authenticated socket from ``welcome`` to close: session start, the read loop,
commands, and the in-band ``auth.refresh``.

Start: the connection joins the hub *before* ``last_seq`` is read, so every event
committed from then on either arrives live or is found by the cursor's catch-up; then
presence (and the per-user connection cap), the ``welcome``, and the cursor starts
replaying after ``resume_from`` (or ``last_seq``).

Per connection there is one reader (this task), one command worker and one writer task
(``connection``). The reader never waits for a command: it handles ``pong``, ``ack``,
bad frames and the rate limit itself, at once, and queues commands for the worker, which
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
from server.errors import Forbidden
from server.gateway.connection import Connection
from server.gateway.errors import error_reply
from server.gateway.handshake import Opened
from server.gateway.limits import TokenBucket
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
            bucket=TokenBucket(settings.ws_rate_per_s, settings.ws_rate_burst),
            client=hello.client, remote=remote, transport=transport,
            close_timeout_s=settings.ws_close_timeout_s,
        )
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
            conn.reply(_shutting_down(command.id))
        if not conn.busy:
            conn.close_soon(CloseCode.GOING_AWAY, "server shutting down")
        # else: the worker closes it after the running command's reply (``_work``).

    async def _welcome(self, conn: Connection, hello: Hello) -> bool:
        """Send the welcome and start delivery; True when the resume was honoured."""
        stream = self.node.stream
        last_seq = await stream.last_seq(conn.user_id)
        resumed = False
        start = last_seq
        if hello.resume_from is not None:
            resumed = await stream.can_resume(conn.user_id, hello.resume_from, last_seq)
            if resumed:
                start = hello.resume_from
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
        """Read until the socket closes; never waits for a command (see the module doc)."""
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            conn.last_heard = time.monotonic()
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            self._on_frame(conn, msg.data, msg.type == WSMsgType.BINARY)
            # After a close was asked, keep reading until the close handshake completes.

    def _on_frame(self, conn: Connection, data: bytes, binary: bool) -> None:
        metrics = self.metrics
        if binary != conn.codec.binary:
            metrics.child(metrics.ws_frames_in, "invalid").inc()
            if self._rate_ok(conn, None):
                conn.reply(Error(id=None, code=ErrorCode.BAD_REQUEST,
                                message=f"{conn.codec.name} takes "
                                        f"{'binary' if conn.codec.binary else 'text'} frames"))
            return
        try:
            message = conn.codec.decode_client(data)
        except DecodeError as exc:
            metrics.child(metrics.ws_frames_in, "invalid").inc()
            if self._rate_ok(conn, exc.id):
                conn.reply(Error(id=exc.id, code=exc.code, message=exc.message,
                                 field=exc.field))
            return
        tag = message.wire_type()
        metrics.child(metrics.ws_frames_in, tag).inc()
        if isinstance(message, Pong):
            return
        if isinstance(message, Ack):
            # Only what this socket was sent can have been processed; the highest ack per
            # user goes to every node's push worker (batched, never awaited here).
            seq = min(message.seq, conn.delivered_seq)
            if seq > conn.acked_seq:
                conn.acked_seq = seq
                self.node.acks.record(conn.user_id, seq)
            return
        if isinstance(message, Hello):
            if self._rate_ok(conn, None):
                conn.reply(Error(id=None, code=ErrorCode.BAD_REQUEST,
                                message="hello: already sent on this connection"))
            return
        assert isinstance(message, Command)
        if not self._rate_ok(conn, message.id):
            return
        self._submit(conn, message)

    def _rate_ok(self, conn: Connection, command_id: str | None) -> bool:
        """Take a token; on refusal reply rate_limited (or close 4029 after WS_ABUSE_S)."""
        wait = conn.bucket.take()
        if wait == 0.0:
            return True
        if conn.bucket.limited_for() >= self.settings.ws_abuse_s:
            conn.close_soon(CloseCode.RATE_LIMIT_ABUSE, "rate limit abuse")
            return False
        conn.reply(Error(id=command_id, code=ErrorCode.RATE_LIMITED,
                        message="too many commands", retry_after_s=round(wait, 3)))
        return False

    # --- commands -------------------------------------------------------------------------
    def _submit(self, conn: Connection, command: Command) -> None:
        """Queue a command for the connection's worker (started on demand)."""
        if conn.draining:
            conn.reply(_shutting_down(command.id))
            return
        limit = self.settings.ws_max_pending_commands
        # Waiting behind the running one (the first queued is the next to run when
        # none is running yet).
        if conn.pending_commands + int(conn.busy) > limit:
            conn.reply(Error(
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
            await conn.send_reply(await self._execute(conn, command, tag))
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
                caller = Caller(principal=conn.principal, connection_id=conn.id)
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

