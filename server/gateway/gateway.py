"""``GET /ws``: the gateway, the only code that touches sockets.

It is handed everything it uses by the composition root — the node (hub, stream,
presence, kick), the verifier, a ready command table and the presence listener — and
imports no domain code. A socket goes through ``handshake`` (credentials, ``hello``),
then ``session`` (welcome, resume, read loop, commands); ``connection`` owns its outbox
and writer; ``sweeper`` runs every socket's timers in one task.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from protocol.codes import CloseCode
from server.auth.sessions import SessionCookies
from server.auth.verifier import Verifier
from server.commands import CommandTable
from server.errors import retry_after_header
from server.gateway.handshake import Handshake, Opened
from server.gateway.session import SHUTDOWN_RETRY_S, PresenceListener, Sessions
from server.gateway.sweeper import Sweeper
from server.observability.metrics import Metrics
from server.realtime.node import Node
from server.resources.outages import Outages
from server.settings import Settings

log = logging.getLogger("server.gateway")


class Gateway:
    def __init__(self, *, settings: Settings, metrics: Metrics, verifier: Verifier,
                 cookies: SessionCookies, node: Node, commands: CommandTable,
                 on_presence: PresenceListener, outages: Outages) -> None:
        self.settings = settings
        self.hub = node.hub
        self.outages = outages
        self.handshake = Handshake(settings, verifier, cookies, metrics, outages)
        self.sessions = Sessions(settings=settings, metrics=metrics, verifier=verifier,
                                 node=node, commands=commands, on_presence=on_presence,
                                 outages=outages)
        self.sweeper = Sweeper(settings, node.hub, node.presence, outages)
        self._accepting = True
        self._drained = False

    @property
    def accepting(self) -> bool:
        """False once draining began (``/readyz`` then says so, upgrades get 503)."""
        return self._accepting

    def start(self) -> None:
        self.sweeper.start()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:
            raise web.HTTPServiceUnavailable(
                reason="server shutting down",
                headers={"Retry-After": retry_after_header(SHUTDOWN_RETRY_S)})
        opened = await self.handshake.open(request)
        if not isinstance(opened, Opened):
            return opened
        ws = opened.ws
        serving = self.sessions.serve(opened, request.remote, request.transport)
        del opened  # not kept for the socket's life (nor its hello): less memory per socket
        await serving
        return ws

    async def drain(self) -> None:
        """Stop accepting upgrades; close every socket 1001, spread over SHUTDOWN_SPREAD_S,
        while each keeps being served (frames read, commands answered) until its close
        handshake is done; wait (at most SHUTDOWN_TIMEOUT_S) until every socket is gone.

        ``python -m server`` calls this on SIGTERM *before* it stops the aiohttp runner:
        the runner's pre-shutdown marks every connection closing, after which aiohttp
        drops inbound frames (close echoes included)."""
        if self._drained:
            return
        self._drained = True
        self._accepting = False
        # Oldest first (ids sort by open time): a deterministic order, and the newest
        # sockets, most likely mid-task, get the most time.
        conns = sorted(self.hub.connections(), key=lambda c: c.id)
        started = time.monotonic()
        deadline = started + self.settings.shutdown_timeout_s
        if conns:
            spread = self.settings.shutdown_spread_s
            log.info("closing sockets for shutdown", extra={"sockets": len(conns),
                                                            "spread_s": spread})
            step = spread / len(conns) if spread > 0 else 0.0
            for i, conn in enumerate(conns):
                self.sessions.drain(conn)
                if step and i + 1 < len(conns):
                    await asyncio.sleep(step)
        # A socket opened during the spread (its upgrade was already past the check).
        for conn in list(self.hub.connections()):
            self.sessions.drain(conn)
        while len(self.hub) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        left = list(self.hub.connections())
        for conn in left:  # still busy past the deadline: close without waiting
            conn.close_now(CloseCode.GOING_AWAY, "server shutting down")
        if conns:
            log.info("sockets closed for shutdown", extra={
                "sockets": len(conns), "forced": len(left),
                "duration_s": round(time.monotonic() - started, 3)})

    async def shutdown(self) -> None:
        """``on_shutdown``: drain (if the process did not already), then stop the sweeper
        and presence listeners."""
        await self.drain()
        await self.sweeper.stop()
        await self.sessions.stop()
