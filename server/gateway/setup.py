"""Cleanup context and route for the WebSocket gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.auth.verifier import VERIFIER
from server.domain.registry import register_all
from server.gateway.dispatch import CommandRegistry
from server.gateway.gateway import Gateway
from server.http.middleware import METRICS
from server.realtime.control import kick
from server.state import EVENT_STREAM, HUB, PRESENCE, SETTINGS

GATEWAY = web.AppKey("gateway", Gateway)


async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
    registry = CommandRegistry()
    register_all(registry)

    async def kick_connections(ids: tuple[str, ...], code: int, reason: str) -> None:
        await kick(app, connection_ids=ids, code=code, reason=reason)

    gateway = Gateway(
        app=app, settings=app[SETTINGS], metrics=app[METRICS], verifier=app[VERIFIER],
        hub=app[HUB], stream=app[EVENT_STREAM], presence=app[PRESENCE], registry=registry,
        kick_connections=kick_connections,
    )
    app[GATEWAY] = gateway
    gateway.start()
    yield


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: every socket gets 1001 before any pool closes."""
    if GATEWAY in app:
        await app[GATEWAY].shutdown()


async def websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[GATEWAY].handle(request)


def setup_gateway(app: web.Application) -> None:
    app.router.add_get("/ws", websocket)
    app.on_shutdown.append(close_sockets)
