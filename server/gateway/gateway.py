"""``GET /ws``: handshake and authentication, the reader loop, heartbeat, shutdown.

The gateway is the only code that touches sockets. Per connection there is one
reader (the request handler task, which also runs commands one at a time, in
order) and one writer task (see ``connection``). Node-wide work — pings, the
4002/4009 rules, presence refresh — runs in one sweeper task, not one per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from protocol.base import Command
from protocol.codec import CODECS, JSON, SUBPROTOCOLS, DecodeError
from protocol.codes import CloseCode, ErrorCode
from protocol.session import (
    Ack,
    AuthRefresh,
    AuthRefreshResult,
    Error,
    Hello,
    Ok,
    Ping,
    Pong,
    Welcome,
)
from server.auth.principal import AuthError, InvalidCredential, Principal
from server.auth.verifier import Verifier
from server.gateway.connection import Connection
from server.gateway.dispatch import (
    CommandContext,
    CommandRegistry,
    PresenceListener,
    error_fields,
)
from server.gateway.ratelimit import TokenBucket
from server.observability.logging import request_id
from server.observability.metrics import Metrics
from server.realtime.cursor import StreamCursor
from server.realtime.hub import Hub
from server.realtime.presence import Presence
from server.realtime.stream import EventStream
from server.settings import Settings

log = logging.getLogger("server.gateway")

WRITER_IDLE_S = 1.0  # a socket's writer task ends after this long without output

_NODE = os.urandom(2).hex()


def new_connection_id() -> str:
    """Sortable by open time (ms), unique across nodes."""
    return f"{int(time.time() * 1000):012x}{_NODE}{secrets.token_hex(4)}"


class Gateway:
    def __init__(
        self,
        *,
        app: web.Application,
        settings: Settings,
        metrics: Metrics,
        verifier: Verifier,
        hub: Hub[Connection],
        stream: EventStream,
        presence: Presence,
        registry: CommandRegistry,
        kick_connections: Any,
        presence_listeners: Sequence[PresenceListener] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.verifier = verifier
        self.hub = hub
        self.stream = stream
        self.presence = presence
        self.registry = registry
        self.presence_listeners = tuple(presence_listeners)
        self._listener_tasks: set[asyncio.Task[None]] = set()
        self._kick_connections = kick_connections
        self._accepting = True
        self._sweeper: asyncio.Task[None] | None = None
        self._ping_frames = {name: codec.encode(Ping()) for name, codec in CODECS.items()}

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="ws-sweeper")

    async def shutdown(self) -> None:
        """Stop accepting; close every socket 1001, spread over SHUTDOWN_SPREAD_S."""
        self._accepting = False
        conns = list(self.hub.connections())
        if conns:
            spread = self.settings.shutdown_spread_s
            log.info("closing sockets for shutdown", extra={"sockets": len(conns),
                                                            "spread_s": spread})
            step = spread / len(conns) if spread > 0 else 0.0
            for i, conn in enumerate(conns):
                conn.close_soon(CloseCode.GOING_AWAY, "server shutting down")
                if step and i + 1 < len(conns):
                    await asyncio.sleep(step)
            deadline = time.monotonic() + 5.0
            while len(self.hub) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # Presence listeners hold database connections: end them before pools close.
        for task in list(self._listener_tasks):
            task.cancel()
        if self._listener_tasks:
            await asyncio.gather(*self._listener_tasks, return_exceptions=True)

    # --- handshake ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        settings = self.settings
        if not self._accepting:
            raise web.HTTPServiceUnavailable(reason="server shutting down")
        principal: Principal | None = None
        auth_error: AuthError | None = None
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                auth_error = InvalidCredential("Authorization: expected 'Bearer <token>'")
            else:
                try:
                    principal = await self.verifier.from_bearer(token.strip())
                except AuthError as exc:
                    auth_error = exc
        else:
            cookie_used = False
            try:
                principal = await self.verifier.from_cookie(request)
                cookie_used = principal is not None
            except AuthError as exc:
                cookie_used, auth_error = True, exc
            if cookie_used and request.headers.get("Origin") not in settings.allowed_origins:
                # Cross-site WebSocket hijacking: refuse before the upgrade (PROTOCOL §2).
                raise web.HTTPForbidden(reason="Origin not allowed for cookie authentication")

        ws = web.WebSocketResponse(
            protocols=SUBPROTOCOLS,
            max_msg_size=settings.ws_max_message_bytes,
            # Protocol-level keepalive; aiohttp pings only after this much inbound
            # silence, by which time the 4002 rule has already closed the socket.
            heartbeat=settings.heartbeat_s * 2,
            compress=False,
            decode_text=False,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(reason="expected a WebSocket upgrade")
        await ws.prepare(request)
        codec = CODECS.get(ws.ws_protocol or "", JSON)
        opened = time.monotonic()
        if auth_error is not None:
            await self._refuse(ws, auth_error.close_code, auth_error.message)
            return ws
        hello = await self._await_hello(ws, codec.binary, opened)
        if hello is None:
            return ws
        if principal is None:
            if hello.token is None:
                await self._refuse(ws, CloseCode.NOT_AUTHENTICATED, "no credential")
                return ws
            try:
                principal = await self.verifier.from_bearer(hello.token)
            except AuthError as exc:
                await self._refuse(ws, exc.close_code, exc.message)
                return ws
        return await self._serve(request, ws, codec, principal, hello)

    async def _refuse(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        self.metrics.ws_closes.labels(str(code)).inc()
        await ws.close(code=code, message=reason.encode()[:120])

    async def _await_hello(
        self, ws: web.WebSocketResponse, binary: bool, opened: float
    ) -> Hello | None:
        remaining = self.settings.hello_timeout_s - (time.monotonic() - opened)
        try:
            msg = await ws.receive(timeout=max(remaining, 0.001))
        except TimeoutError:
            await self._refuse(ws, CloseCode.NOT_AUTHENTICATED, "no hello in time")
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None  # closed, or aiohttp already closed it (e.g. 1009)
        if (msg.type == WSMsgType.BINARY) != binary:
            await self._refuse(ws, CloseCode.PROTOCOL_VIOLATION, "wrong frame kind")
            return None
        codec = CODECS.get(ws.ws_protocol or "", JSON)
        try:
            message = codec.decode_client(msg.data)
        except DecodeError as exc:
            await self._refuse(ws, CloseCode.PROTOCOL_VIOLATION, f"expected hello: {exc.message}")
            return None
        if not isinstance(message, Hello):
            await self._refuse(ws, CloseCode.PROTOCOL_VIOLATION, "expected hello first")
            return None
        return message

    # --- the session ----------------------------------------------------------------------
    async def _serve(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        codec: Any,
        principal: Principal,
        hello: Hello,
    ) -> web.WebSocketResponse:
        settings = self.settings
        conn = Connection(
            id=new_connection_id(), ws=ws, codec=codec, principal=principal, cursor=None,
            metrics=self.metrics, outbox_limit=settings.ws_outbox_bytes,
            bucket=TokenBucket(settings.ws_rate_per_s, settings.ws_rate_burst),
            client=hello.client, remote=request.remote,
        )
        token = request_id.set(conn.id)
        user_id = principal.user_id
        conn.cursor = StreamCursor(self.stream, user_id, conn, delivered=-1)
        # Join the hub before reading last_seq: every event committed from now on
        # either arrives live or is found by the cursor's catch-up.
        self.hub.add(conn)
        self.metrics.ws_open.inc()
        registered = False
        try:
            try:
                live_ids = await self.presence.connected(user_id, conn.id)
                registered = True
            except Exception as exc:  # Redis down: serve anyway; the sweeper's refresh
                # re-adds this socket to presence once Redis is back.
                log.warning("presence unavailable at connect", extra={"error": repr(exc)})
                live_ids = []
            if live_ids == [conn.id]:
                self._presence_changed(user_id, True)
            if len(live_ids) > settings.ws_max_connections_per_user:
                oldest = tuple(live_ids[: len(live_ids) - settings.ws_max_connections_per_user])
                await self._kick_connections(oldest, CloseCode.REPLACED,
                                             "replaced by a newer connection")
            last_seq = await self.stream.last_seq(user_id)
            resumed = False
            start = last_seq
            if hello.resume_from is not None:
                resumed = await self.stream.can_resume(user_id, hello.resume_from, last_seq)
                if resumed:
                    start = hello.resume_from
            conn.cursor.delivered = start
            conn.send(Welcome(
                session_id=conn.id, user_id=user_id, last_seq=last_seq,
                heartbeat_s=settings.heartbeat_s, resumed=resumed,
                server_time=datetime.now(UTC),
            ))
            conn.welcomed = True
            conn.cursor.start(last_seq)
            log.info("socket open", extra={
                "user_id": user_id, "session": principal.session_id, "client": hello.client,
                "codec": codec.name, "resume_from": hello.resume_from, "resumed": resumed,
                "last_seq": last_seq, "remote": request.remote,
            })
            await self._read_loop(conn)
        except Exception:
            log.exception("socket failed", extra={"user_id": user_id})
            conn.close_now(1011, "internal error")
        finally:
            self.hub.remove(conn)
            self.metrics.ws_open.dec()
            if registered:
                # Shielded: a cancelled handler (client gone mid-cleanup) must not
                # leave the user "online" until the presence TTL runs out.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._forget_connection(user_id, conn.id))
            await conn.finish()
            code = ws.close_code if ws.close_code is not None else conn.close_code
            self.metrics.ws_closes.labels(str(code)).inc()
            log.info("socket closed", extra={
                "user_id": user_id, "close_code": code, "reason": conn.close_reason or None,
                "duration_s": round(time.monotonic() - conn.opened, 3),
                "delivered_seq": conn.cursor.delivered,
            })
            request_id.reset(token)
        return ws

    async def _forget_connection(self, user_id: str, connection_id: str) -> None:
        if await self.presence.disconnected(user_id, connection_id):
            self._presence_changed(user_id, False)

    def _presence_changed(self, user_id: str, online: bool) -> None:
        """Run the presence listeners (e.g. tell matched users) off the socket's path."""
        for listener in self.presence_listeners:
            task = asyncio.create_task(self._run_listener(listener, user_id, online))
            self._listener_tasks.add(task)
            task.add_done_callback(self._listener_tasks.discard)

    async def _run_listener(self, listener: PresenceListener, user_id: str,
                            online: bool) -> None:
        try:
            await listener(self.app, user_id, online)
        except Exception:
            log.exception("presence listener failed", extra={"user_id": user_id})

    async def _read_loop(self, conn: Connection) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            conn.last_heard = time.monotonic()
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            await self._on_frame(conn, msg.data, msg.type == WSMsgType.BINARY)
            if conn.close_code is not None:
                # Let the writer flush and close; keep reading until the close completes.
                continue

    async def _on_frame(self, conn: Connection, data: bytes, binary: bool) -> None:
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
                conn.reply(Error(id=exc.id, code=exc.code, message=exc.message))
            return
        tag = message.wire_type()
        metrics.child(metrics.ws_frames_in, tag).inc()
        if isinstance(message, Pong):
            return
        if isinstance(message, Ack):
            conn.acked_seq = max(conn.acked_seq, message.seq)
            return
        if isinstance(message, Hello):
            if self._rate_ok(conn, None):
                conn.reply(Error(id=None, code=ErrorCode.BAD_REQUEST,
                                message="hello: already sent on this connection"))
            return
        assert isinstance(message, Command)
        if not self._rate_ok(conn, message.id):
            return
        await self._run_command(conn, message)

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

    async def _run_command(self, conn: Connection, command: Command) -> None:
        tag = command.wire_type()
        started = time.perf_counter()
        try:
            if isinstance(command, AuthRefresh):
                result: Any = await self._auth_refresh(conn, command)
            else:
                handler = self.registry.get(type(command))
                if handler is None:
                    conn.reply(Error(id=command.id, code=ErrorCode.BAD_REQUEST,
                                    message=f"type: '{tag}' is not supported by this server yet"))
                    return
                ctx = CommandContext(app=self.app, principal=conn.principal,
                                     connection_id=conn.id)
                result = await handler(ctx, command)
            conn.reply(Ok(id=command.id, result=result))
        except Exception as exc:
            code, message, retry_after = error_fields(exc)
            if code is ErrorCode.INTERNAL:
                log.exception("command failed", extra={
                    "command": tag, "command_id": command.id, "user_id": conn.user_id})
            conn.reply(Error(id=command.id, code=code, message=message,
                            retry_after_s=retry_after))
        finally:
            self.metrics.child(self.metrics.ws_command_latency, tag).observe(
                time.perf_counter() - started)

    async def _auth_refresh(self, conn: Connection, command: AuthRefresh) -> AuthRefreshResult:
        principal = await self.verifier.from_bearer(command.token)
        if principal.user_id != conn.user_id:
            from server.domain.errors import Forbidden

            raise Forbidden("token: belongs to another user")
        conn.replace_principal(principal)
        expires = principal.expires_at or datetime.now(UTC)
        return AuthRefreshResult(expires_at=expires)

    # --- node-wide sweeper ------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        heartbeat = self.settings.heartbeat_s
        interval = min(heartbeat / 4, 1.0)
        last_refresh = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                now = time.monotonic()
                self._sweep(now, time.time())
                if now - last_refresh >= heartbeat / 2:
                    last_refresh = now
                    await self.presence.refresh(
                        (c.user_id, c.id) for c in self.hub.connections()
                    )
            except Exception as exc:  # e.g. Redis down: presence refresh retried next round
                log.warning("sweep failed", extra={"error": repr(exc)})

    def _sweep(self, now: float, wall: float) -> None:
        heartbeat = self.settings.heartbeat_s
        grace = self.settings.token_expiry_grace_s
        for conn in self.hub.connections():
            if conn.close_code is not None:
                continue
            conn.release_idle_writer(now, WRITER_IDLE_S)
            if now - conn.last_heard > 2 * heartbeat:
                conn.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                continue
            expires = conn.expires_at
            if expires is not None and wall > expires.timestamp() + grace:
                conn.close_soon(CloseCode.TOKEN_EXPIRED, "access token expired")
                continue
            if now - conn.last_ping >= heartbeat:
                conn.last_ping = now
                conn.metrics.child(conn.metrics.ws_frames_out, "ping").inc()
                conn.send_raw(self._ping_frames[conn.codec.name])
