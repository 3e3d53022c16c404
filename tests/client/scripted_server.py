"""A small real WebSocket server that speaks the protocol by script.

Each accepted connection runs the next script (the last one repeats): a
coroutine that gets a ``ServerConn`` after the client's ``hello`` and decides
what to send and when to close. Everything the client sends is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

from protocol import (
    CODECS,
    JSON,
    SUBPROTOCOLS,
    Ack,
    ClientMessage,
    Codec,
    Command,
    Hello,
    Pong,
    Welcome,
)
from protocol.base import Message, Result

Script = Callable[["ServerConn"], Awaitable[None]]


class ServerConn:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, codec: Codec) -> None:
        self.ws = ws
        self.request = request
        self.codec = codec
        self.hello: Hello | None = None
        self.received: list[ClientMessage] = []
        self.wrong_frames = 0
        self._inbox: asyncio.Queue[ClientMessage | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.request.headers)

    @property
    def acks(self) -> list[int]:
        return [m.seq for m in self.received if isinstance(m, Ack)]

    @property
    def pongs(self) -> int:
        return sum(isinstance(m, Pong) for m in self.received)

    async def read_loop(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                if not self.codec.frame_kind_ok(msg.type is WSMsgType.BINARY):
                    self.wrong_frames += 1
                    continue
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                decoded = self.codec.decode_client(data)
                self.received.append(decoded)
                self._inbox.put_nowait(decoded)
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._inbox.put_nowait(None)

    async def recv(self, within_s: float = 3.0) -> ClientMessage:
        """The next message the client sent (hello, pong, ack and commands alike)."""
        async with asyncio.timeout(within_s):
            msg = await self._inbox.get()
        assert msg is not None, "client closed the connection"
        return msg

    async def recv_command(self, within_s: float = 3.0) -> Command:
        """The next command, skipping pongs and acks."""
        while True:
            msg = await self.recv(within_s)
            if isinstance(msg, Command):
                return msg

    async def send(self, msg: Message) -> None:
        data = self.codec.encode(msg)
        if self.codec.binary:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data.decode())

    async def welcome(
        self, *, last_seq: int = 0, resumed: bool = False, heartbeat_s: float = 30.0
    ) -> None:
        await self.send(
            Welcome(
                session_id=f"s{id(self)}",
                user_id="u1",
                last_seq=last_seq,
                heartbeat_s=heartbeat_s,
                resumed=resumed,
                server_time=datetime.now(UTC),
            )
        )

    async def reply(self, cmd: Command, result: Result) -> None:
        from protocol import Ok

        await self.send(Ok(id=cmd.id, result=result))

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    async def wait_closed(self, within_s: float = 3.0) -> None:
        async with asyncio.timeout(within_s):
            await self.closed.wait()


class ScriptedServer:
    def __init__(self, scripts: list[Script]) -> None:
        assert scripts
        self.scripts = scripts
        self.conns: list[ServerConn] = []
        self.url = ""
        self._arrived = asyncio.Condition()

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=SUBPROTOCOLS)
        await ws.prepare(request)
        codec = CODECS.get(ws.ws_protocol or "", JSON)
        conn = ServerConn(ws, request, codec)
        reader = asyncio.create_task(conn.read_loop())
        try:
            first = await conn.recv()
            assert isinstance(first, Hello), f"first message {first!r}"
            conn.hello = first
            async with self._arrived:
                self.conns.append(conn)
                self._arrived.notify_all()
            script = self.scripts[min(len(self.conns) - 1, len(self.scripts) - 1)]
            await script(conn)
            await conn.closed.wait()  # leave the socket open until someone closes it
        finally:
            reader.cancel()
        return ws

    async def connection(self, n: int, within_s: float = 3.0) -> ServerConn:
        """The n-th connection (0-based) once its hello arrived."""
        async with asyncio.timeout(within_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.conns) > n)
        return self.conns[n]


async def until(predicate: Callable[[], bool], within_s: float = 2.0) -> None:
    """Wait until ``predicate()`` holds (polling), or fail after ``within_s``."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def serve_forever(conn: ServerConn) -> None:
    """Script: welcome, then nothing (commands go unanswered)."""
    await conn.welcome()
