"""Cleanup context for the realtime core: event stream, presence, hub, broker subscription."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server.http.middleware import METRICS
from server.realtime.hub import Hub
from server.realtime.presence import MemoryPresence, Presence, RedisPresence
from server.realtime.stream import EventStream, prune_periodically
from server.state import BROKER, DB, EVENT_STREAM, HUB, PRESENCE, REDIS, SETTINGS


async def realtime_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    stream = EventStream(app[DB], app[BROKER], app[METRICS])
    presence: Presence
    if REDIS in app:
        presence = RedisPresence(app[REDIS], settings.redis_prefix,
                                 ttl_s=max(2 * settings.heartbeat_s, 1.0))
    else:
        presence = MemoryPresence()
    hub: Hub[Any] = Hub(stream, app[METRICS], settings.event_position_check_s)
    app[EVENT_STREAM] = stream
    app[PRESENCE] = presence
    app[HUB] = hub
    await app[BROKER].start(hub.on_bus, hub.on_broker_reconnect)
    hub.start()
    pruner = asyncio.create_task(prune_periodically(stream, settings.event_retention_days),
                                 name="event-pruner")
    try:
        yield
    finally:
        pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner
        await hub.stop()
