"""Cleanup context: the lost & found service and its fan-out runner (a background task)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.domain.lost_found.fanout import FanoutRunner
from server.domain.lost_found.handlers import LOST_FOUND
from server.domain.lost_found.service import LostFound
from server.ratelimit import RATE_LIMITER
from server.state import EVENT_STREAM, PRESENCE


async def lost_found_ctx(app: web.Application) -> AsyncIterator[None]:
    runner = FanoutRunner(app[EVENT_STREAM], app[PRESENCE])
    app[LOST_FOUND] = LostFound(stream=app[EVENT_STREAM], limiter=app[RATE_LIMITER],
                                runner=runner, presence=app[PRESENCE])
    runner.start()
    try:
        yield
    finally:
        await runner.stop()
