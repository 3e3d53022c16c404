"""Fixtures for the client tests: a scripted server on a loopback port and a
client factory with tiny delays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from client import Backoff, Client
from tests.client.scripted_server import Script, ScriptedServer

MakeServer = Callable[..., Awaitable[ScriptedServer]]


@pytest.fixture
async def scripted(aiohttp_server: Any) -> MakeServer:
    async def make(*scripts: Script) -> ScriptedServer:
        srv = ScriptedServer(list(scripts))
        app = web.Application()
        app.router.add_get("/ws", srv.handler)
        server = await aiohttp_server(app)
        srv.url = str(server.make_url("/ws"))
        return srv

    return make


class RecordingRng:
    """Stands in for ``random.Random``: records each ``uniform(a, b)`` and returns
    ``fraction`` of the way from a to b (0 → reconnect at once)."""

    def __init__(self, fraction: float = 0.0) -> None:
        self.calls: list[tuple[float, float]] = []
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


@pytest.fixture
def rng() -> RecordingRng:
    return RecordingRng()


@pytest.fixture
async def make_client(rng: RecordingRng) -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        kwargs.setdefault("token", "tok-1")
        kwargs.setdefault("backoff", Backoff(base=0.5, cap=30.0, rng=rng))  # type: ignore[arg-type]
        kwargs.setdefault("command_timeout_s", 3.0)
        kwargs.setdefault("handshake_timeout_s", 3.0)
        kwargs.setdefault("ack_interval_s", 0.05)
        c = Client(url, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()
