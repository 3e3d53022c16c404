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
from server.gateway.handshake import Handshake, Opened
from server.gateway.session import PresenceListener, Sessions
from server.gateway.sweeper import Sweeper
from server.observability.metrics import Metrics
from server.realtime.node import Node
from server.settings import Settings

log = logging.getLogger("server.gateway")


class Gateway:
    def __init__(self, *, settings: Settings, metrics: Metrics, verifier: Verifier,
                 cookies: SessionCookies, node: Node, commands: CommandTable,
                 on_presence: PresenceListener) -> None:
        self.settings = settings
        self.hub = node.hub
        self.handshake = Handshake(settings, verifier, cookies, metrics)
        self.sessions = Sessions(settings=settings, metrics=metrics, verifier=verifier,
                                 node=node, commands=commands, on_presence=on_presence)
        self.sweeper = Sweeper(settings, node.hub, node.presence)
        self._accepting = True

    def start(self) -> None:
        self.sweeper.start()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:
            raise web.HTTPServiceUnavailable(reason="server shutting down")
        opened = await self.handshake.open(request)
        if isinstance(opened, Opened):
            await self.sessions.serve(opened, request.remote)
            return opened.ws
        return opened

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
        await self.sweeper.stop()
        await self.sessions.stop()
