"""The ``/ws`` route, and closing every socket 1001 on shutdown before any pool closes."""

from __future__ import annotations

from aiohttp import web

from server.auth.sessions import sessionless
from server.state import RUNTIME


@sessionless  # a socket: nothing for the session middleware to save
async def websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[RUNTIME].gateway.handle(request)


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: runs before the cleanup contexts (so before any pool closes)."""
    if RUNTIME in app:
        await app[RUNTIME].gateway.shutdown()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
    app.on_shutdown.append(close_sockets)
