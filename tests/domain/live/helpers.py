"""Helpers that read like live streaming: go live, join, wait for a room event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from protocol.base import Message
from protocol.live import (
    JoinResult,
    LiveChatCommand,
    LiveJoin,
    LiveStart,
    StartResult,
)
from server.deps import Deps
from server.domain.live.service import LiveService
from server.state import RUNTIME
from tests.domain.conftest import User, cid
from tests.support.ws import ConnectionClosedError, ProtocolSocket


def deps_of(client: TestClient[Any, Any]) -> Deps:
    deps: Deps = client.server.app[RUNTIME].deps
    return deps


def live_of(client: TestClient[Any, Any]) -> LiveService:
    live: LiveService = client.server.app[RUNTIME].commands.service(LiveService)
    return live


async def go_live(host: User, title: str = "Rex at the beach", **fields: Any) -> StartResult:
    result: StartResult = await host.cmd(LiveStart(id=cid(), title=title, **fields))
    return result


async def join(user: User, stream_id: str, sock: ProtocolSocket | None = None) -> JoinResult:
    result: JoinResult = await (sock or user.sock).command(LiveJoin(id=cid(), stream_id=stream_id))
    return result


async def say(user: User, stream_id: str, body: str) -> Any:
    return await user.cmd(LiveChatCommand(id=cid(), stream_id=stream_id, body=body))


async def next_of(sock: ProtocolSocket, type_: str, *, timeout: float = 5.0,
                  where: Callable[[Any], bool] | None = None) -> Any:
    """The next message of wire type ``type_`` (matching ``where``); other messages that
    arrive meanwhile (viewer counts, reactions, …) are skipped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        while sock.pending:
            message = sock.pending.pop(0)
            if message.wire_type() == type_ and (where is None or where(message)):
                return message
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no {type_} within {timeout} s")
        try:
            message = await sock.receive(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no {type_} within {timeout} s") from None
        if message.wire_type() == type_ and (where is None or where(message)):
            return message


async def none_of(sock: ProtocolSocket, type_: str, within: float = 0.5) -> None:
    """No message of ``type_`` arrives within ``within`` seconds (others are skipped)."""
    sock.pending[:] = [m for m in sock.pending if m.wire_type() != type_]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (remaining := deadline - loop.time()) > 0:
        try:
            message: Message = await sock.receive(timeout=remaining)
        except (TimeoutError, ConnectionClosedError):
            return
        assert message.wire_type() != type_, f"unexpected {message}"


async def sql(client: TestClient[Any, Any], query: str, *args: Any) -> Any:
    pool: asyncpg.Pool = deps_of(client).db
    return await pool.execute(query, *args)
