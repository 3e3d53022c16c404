"""From ``GET /ws`` to an authenticated socket with its ``hello`` (PROTOCOL §2, §3).

Credentials, in order: an ``Authorization: Bearer`` header (judged alone), else the
session cookie (then ``Origin`` must be allowed, or HTTP 403 before the upgrade), else
``hello.token``. Every other refusal happens after the upgrade, as a close code browsers
can see: invalid/expired/revoked 4001, banned 4003, no valid ``hello`` in time 4001, a
first frame that is not a ``hello`` 4000. Too many sockets from one address still
waiting for their ``hello`` (``WS_HANDSHAKES_PER_ADDRESS``): 429 before the upgrade.

PostgreSQL unavailable (the credential cannot be checked): before the upgrade, HTTP 503
with ``Retry-After`` (raised as ``Unavailable``, mapped by the HTTP edge); after it (a
``hello.token``), close 1013 (try again later). Sockets already open are not affected.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from protocol.codec import CODECS, JSON, SUBPROTOCOLS, Codec, DecodeError
from protocol.codes import CloseCode
from protocol.session import Hello
from server.auth.sessions import SessionCookies, clear_if_stale, mark_stale
from server.auth.verifier import Verifier
from server.errors import AppError, InvalidCredential
from server.gateway.errors import close_for
from server.observability.metrics import Metrics
from server.principal import Principal
from server.resources.outages import Outages
from server.settings import Settings

log = logging.getLogger("server.gateway")


@dataclass(frozen=True, slots=True)
class Opened:
    """A socket past the handshake: who, which codec, and their ``hello``."""

    ws: web.WebSocketResponse
    codec: Codec
    principal: Principal
    hello: Hello


def _address(request: web.Request, trust_forwarded_for: bool) -> str:
    """The client address, by the rule of ``server.http.client.client_address`` (the two
    edges do not import each other): the TCP peer, or the first X-Forwarded-For hop when
    TRUST_FORWARDED_FOR is set."""
    for candidate in ((request.headers.get("X-Forwarded-For", "").split(",", 1)[0]
                       if trust_forwarded_for else ""), request.remote or ""):
        try:
            return str(ipaddress.ip_address(candidate.strip()))
        except ValueError:
            continue
    return "unknown"


class Handshake:
    def __init__(self, settings: Settings, verifier: Verifier, cookies: SessionCookies,
                 metrics: Metrics, outages: Outages) -> None:
        self.settings = settings
        self.verifier = verifier
        self.cookies = cookies
        self.metrics = metrics
        self.outages = outages
        self._pending: dict[str, int] = {}
        """Sockets per client address between the upgrade request and a valid ``hello``."""

    async def open(self, request: web.Request) -> Opened | web.WebSocketResponse:
        """The opened socket, or the (already closed) response of a refused one.

        Raises ``web.HTTPException`` for refusals before the upgrade (403, 400, 429).

        At most ``WS_HANDSHAKES_PER_ADDRESS`` sockets of one address may be pending (no
        valid ``hello`` yet) on this node at once: each costs a socket and a timer for up
        to ``HELLO_TIMEOUT_S`` before anyone is known, so beyond that the upgrade is
        refused with 429 before any work. Per node on purpose: it protects the node's own
        file descriptors and memory."""
        address = _address(request, self.settings.trust_forwarded_for)
        pending = self._pending.get(address, 0)
        if pending >= self.settings.ws_handshakes_per_address:
            log.warning("too many pending handshakes from one address",
                        extra={"address": address, "pending": pending})
            raise web.HTTPTooManyRequests(
                reason="too many sockets awaiting hello from this address",
                headers={"Retry-After": str(max(1, math.ceil(self.settings.hello_timeout_s)))})
        self._pending[address] = pending + 1
        try:
            return await self._open(request)
        finally:
            left = self._pending[address] - 1
            if left:
                self._pending[address] = left
            else:
                del self._pending[address]

    async def _open(self, request: web.Request) -> Opened | web.WebSocketResponse:
        try:
            principal, refused = await self._upgrade_credential(request)
        except AppError:
            raise
        except Exception as exc:  # e.g. PostgreSQL down: 503 + Retry-After, no upgrade
            unavailable = self.outages.unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from None
        settings = self.settings
        ws = web.WebSocketResponse(
            protocols=SUBPROTOCOLS,
            max_msg_size=settings.ws_max_message_bytes,
            # Protocol-level keepalive; aiohttp pings only after this much inbound
            # silence, by which time the 4002 rule has already closed the socket.
            heartbeat=settings.heartbeat_s * 2,
            # WebSocket pings are answered by the session's reader, within the socket's
            # frame budget: aiohttp's own answer would let a ping flood bypass it.
            autoping=False,
            compress=False,
            decode_text=False,
            # How long our close waits for the client's echo (bounded again, with the
            # transport cut, by the connection: WS_CLOSE_TIMEOUT_S).
            timeout=settings.ws_close_timeout_s,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(reason="expected a WebSocket upgrade")
        clear_if_stale(request, ws, self.cookies)
        await ws.prepare(request)
        codec = CODECS.get(ws.ws_protocol or "", JSON)
        opened = time.monotonic()
        if refused is not None:
            await self.refuse(ws, *close_for(refused))
            return ws
        hello = await self._await_hello(ws, codec, opened)
        if hello is None:
            return ws
        if principal is None:
            if hello.token is None:
                await self.refuse(ws, CloseCode.NOT_AUTHENTICATED, "no credential")
                return ws
            try:
                principal = await self.verifier.from_bearer(hello.token)
            except AppError as exc:
                await self.refuse(ws, *close_for(exc))
                return ws
            except Exception as exc:
                if self.outages.unavailable(exc) is None:
                    raise
                await self.refuse(ws, CloseCode.TRY_AGAIN_LATER,
                                  "database unavailable, try again")
                return ws
        return Opened(ws=ws, codec=codec, principal=principal, hello=hello)

    async def _upgrade_credential(self, request: web.Request
                                  ) -> tuple[Principal | None, AppError | None]:
        """The principal of the upgrade's header or cookie (None: wait for hello.token),
        or the refusal to close with once upgraded."""
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None, InvalidCredential("Authorization: expected 'Bearer <token>'")
            try:
                return await self.verifier.from_bearer(token.strip()), None
            except AppError as exc:
                return None, exc
        principal: Principal | None = None
        refused: AppError | None = None
        try:
            principal = await self.verifier.from_cookie(request)
            cookie_used = principal is not None
        except InvalidCredential:
            # A stale cookie (revoked, expired, unknown session) never blocks a valid
            # hello.token: it is ignored, and cleared on the upgrade's response.
            mark_stale(request)
            cookie_used = False
        except AppError as exc:  # a banned account: 4003 once upgraded
            cookie_used, refused = True, exc
        if cookie_used and request.headers.get("Origin") not in self.settings.allowed_origins:
            # Cross-site WebSocket hijacking: refuse before the upgrade (PROTOCOL §2).
            raise web.HTTPForbidden(reason="Origin not allowed for cookie authentication")
        return principal, refused

    async def refuse(self, ws: web.WebSocketResponse, code: CloseCode, reason: str) -> None:
        self.metrics.ws_closes.labels(str(int(code))).inc()
        await ws.close(code=code, message=reason.encode()[:120])

    async def _await_hello(self, ws: web.WebSocketResponse, codec: Codec, opened: float
                           ) -> Hello | None:
        while True:
            remaining = self.settings.hello_timeout_s - (time.monotonic() - opened)
            try:
                msg = await ws.receive(timeout=max(remaining, 0.001))
            except TimeoutError:
                await self.refuse(ws, CloseCode.NOT_AUTHENTICATED, "no hello in time")
                return None
            # WebSocket pings before the hello (autoping is off): answered, bounded by
            # HELLO_TIMEOUT_S and WS_HANDSHAKES_PER_ADDRESS like the wait itself.
            if msg.type is WSMsgType.PING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.pong(msg.data)
            elif msg.type is not WSMsgType.PONG:
                break
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None  # closed, or aiohttp already closed it (e.g. 1009)
        if (msg.type == WSMsgType.BINARY) != codec.binary:
            await self.refuse(ws, CloseCode.PROTOCOL_VIOLATION, "wrong frame kind")
            return None
        try:
            message = codec.decode_client(msg.data)
        except DecodeError as exc:
            await self.refuse(ws, CloseCode.PROTOCOL_VIOLATION,
                              f"expected hello: {exc.message}")
            return None
        if not isinstance(message, Hello):
            await self.refuse(ws, CloseCode.PROTOCOL_VIOLATION, "expected hello first")
            return None
        return message
