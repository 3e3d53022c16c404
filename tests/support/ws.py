"""A thin test client that reads like the protocol: hello, command, expect_event, expect_close."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, TypeVar

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from protocol.base import Command, Message, Result
from protocol.codec import CODECS, JSON, Codec
from protocol.session import Error, Hello, Ok, Ping, Pong, Welcome

R = TypeVar("R", bound=Result)


class ProtocolSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, codec: Codec) -> None:
        self.ws = ws
        self.codec = codec
        self._ids = itertools.count(1)
        self.auto_pong = True
        self.welcome: Welcome | None = None

    async def send(self, message: Message) -> None:
        data = self.codec.encode(message)
        if self.codec.binary:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data.decode())

    async def send_raw(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def receive(self, timeout: float = 5.0) -> Message:
        """The next server message (pings answered and skipped when auto_pong)."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                raise ConnectionClosedError(self.ws.close_code)
            if msg.type == WSMsgType.ERROR:
                raise ConnectionClosedError(self.ws.close_code)
            decoded = self.codec.decode_server(msg.data)
            if isinstance(decoded, Ping) and self.auto_pong:
                await self.send(Pong())
                continue
            return decoded

    async def hello(self, **fields: Any) -> Welcome:
        await self.send(Hello(**fields))
        message = await self.receive()
        assert isinstance(message, Welcome), message
        self.welcome = message
        return message

    def next_id(self) -> str:
        return f"c{next(self._ids)}"

    async def request(self, command: Command, timeout: float = 5.0) -> Ok | Error:
        """Send a command, return its reply; events arriving meanwhile are kept."""
        await self.send(command)
        while True:
            message = await self.receive(timeout)
            if isinstance(message, (Ok, Error)) and message.id == command.id:
                return message
            self.pending.append(message)

    async def command(self, command: Command, timeout: float = 5.0) -> Any:
        reply = await self.request(command, timeout)
        assert isinstance(reply, Ok), f"expected ok, got {reply}"
        return self.codec.decode_result(reply.result, type(command).result_type)

    @property
    def pending(self) -> list[Message]:
        if not hasattr(self, "_pending"):
            self._pending: list[Message] = []
        return self._pending

    async def expect(self, type_: str, timeout: float = 5.0) -> Any:
        """The next message (pending ones first) must have wire type ``type_``."""
        if self.pending:
            message = self.pending.pop(0)
        else:
            message = await self.receive(timeout)
        assert message.wire_type() == type_, f"expected {type_}, got {message}"
        return message

    async def expect_nothing(self, within: float = 0.3) -> None:
        assert not self.pending, self.pending
        try:
            message = await self.receive(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {message}")

    async def expect_close(self, code: int, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                msg = await self.ws.receive(timeout=max(remaining, 0.01))
            except TimeoutError:
                raise AssertionError(f"socket still open, expected close {code}") from None
            if msg.type == WSMsgType.CLOSE:
                # The frame's code is the server's word; the client's close_code can
                # read 1006 when the server drops the transport right after.
                got = msg.data
                break
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                got = self.ws.close_code
                break
        assert got == code, f"closed {got}, expected {code}"

    async def close(self) -> None:
        await self.ws.close()


class ConnectionClosedError(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


async def connect(
    client: TestClient,
    *,
    token: str | None = None,
    codec: str = JSON.name,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> ProtocolSocket:
    # Cookie auth is always explicit (a Cookie header): the shared jar would
    # otherwise carry register()'s session cookie into every upgrade.
    client.session.cookie_jar.clear()
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    ws = await client.ws_connect("/ws", protocols=(codec,), headers=all_headers,
                                 autoping=True, **kwargs)
    return ProtocolSocket(ws, CODECS[codec])


async def open_session(client: TestClient, token: str, codec: str = JSON.name,
                       **hello: Any) -> ProtocolSocket:
    sock = await connect(client, token=token, codec=codec)
    await sock.hello(**hello)
    return sock
