"""The node-wide sweeper: one task for every socket's timers (not one task per socket).

At least every second (every ``heartbeat_s / 4`` when shorter) it sends due pings,
closes sockets silent for twice ``heartbeat_s`` (4002) or past their access token's expiry
plus ``TOKEN_EXPIRY_GRACE_S`` (4009), ends writer and command-worker tasks idle for
``WS_WRITER_IDLE_S``,
and every ``heartbeat_s / 2`` refreshes this node's presence entries (so a killed node's
users drop offline within the presence TTL, and a Redis restart is repaired).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from protocol.codec import CODECS
from protocol.codes import CloseCode
from protocol.session import Ping
from server.gateway.connection import Connection
from server.realtime.hub import Hub
from server.realtime.presence import Presence
from server.resources.outages import Outages
from server.settings import Settings

log = logging.getLogger("server.gateway")


class Sweeper:
    def __init__(self, settings: Settings, hub: Hub[Connection], presence: Presence,
                 outages: Outages) -> None:
        self.settings = settings
        self.outages = outages
        self.hub = hub
        self.presence = presence
        self._ping_frames = {name: codec.encode(Ping()) for name, codec in CODECS.items()}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        """Sweeps done so far (logs and tests can tell that a sweep has happened)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ws-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        heartbeat = self.settings.heartbeat_s
        interval = min(heartbeat / 4, 1.0)
        last_refresh = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                now = time.monotonic()
                self.sweep(self.hub.connections(), now, time.time())
                if now - last_refresh >= heartbeat / 2:
                    last_refresh = now
                    await self._refresh_presence()
            except Exception:
                log.exception("sweep failed")
            self.rounds += 1

    async def _refresh_presence(self) -> None:
        try:
            await self.presence.refresh((c.user_id, c.id) for c in self.hub.connections())
        except Exception as exc:  # Redis down: logged once per outage, retried next round
            if self.outages.unavailable(exc) is None:
                raise

    def sweep(self, conns: Iterable[Connection], now: float, wall: float) -> None:
        settings = self.settings
        heartbeat = settings.heartbeat_s
        grace = settings.token_expiry_grace_s
        idle_s = settings.ws_writer_idle_s
        for conn in conns:
            if conn.close_code is not None:
                continue
            conn.release_idle_writer(now, idle_s)
            conn.release_idle_worker(now, idle_s)
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
