"""What the fault tests share: log records by message, keeping a socket alive, a handler
that blocks until the test lets it go."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from protocol.base import Empty
from server.commands import Caller
from server.gateway.gateway import Gateway
from server.state import RUNTIME
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Error lines the server logged (tracebacks, ``internal``)."""
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("server") and r.levelno >= logging.ERROR]


async def stays_alive(client: Any, sock: ProtocolSocket, heartbeats: float) -> None:
    """Let ``heartbeats`` x heartbeat_s pass (counted in sweeps, not wall time) while the
    client answers pings like a live one; the socket must still be open."""
    gateway = client.app[RUNTIME].gateway
    assert isinstance(gateway, Gateway)
    heartbeat = client.app[RUNTIME].deps.settings.heartbeat_s
    interval = min(heartbeat / 4, 1.0)
    target = gateway.sweeper.rounds + int(heartbeats * heartbeat / interval) + 1
    while gateway.sweeper.rounds < target:
        try:
            message = await sock.receive(timeout=0.05)  # answers pings meanwhile
        except TimeoutError:
            continue
        sock.pending.append(message)
    assert not sock.ws.closed


async def until_answering(sock: ProtocolSocket, condition: Callable[[], bool], *,
                          timeout: float = 10.0, what: str = "the condition") -> None:
    """``until(condition)`` for a socket with a short heartbeat: read (and so answer
    pings) while polling, keeping what arrives in ``sock.pending``."""

    async def check() -> bool:
        try:
            sock.pending.append(await sock.receive(timeout=0.05))
        except TimeoutError:
            pass
        return condition()

    await until(check, timeout=timeout, interval=0.0, what=what)


class Gate:
    """A handler that records what started and waits until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []

    def handler(self) -> Callable[[Caller, Any], Awaitable[Empty]]:
        async def handle(caller: Caller, command: Any) -> Empty:
            self.started.append(command.id)
            await self.open.wait()
            return Empty()
        return handle
