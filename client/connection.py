"""One WebSocket connection: upgrade, ``hello``/``welcome``, framed send/receive.

Knows nothing about reconnecting, commands or seqs; ``client.py`` does. A
connection that ends (close frame, error, watchdog) is reported as ``Closed``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import msgspec

from client.credentials import Credentials
from client.errors import HandshakeRejected
from protocol import CloseCode, Codec, DecodeError, Hello, ServerMessage, Welcome

log = logging.getLogger("petspark.client")

ABNORMAL = 1006
"""RFC 6455: the connection ended without a close frame (also used for network errors)."""

CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the server's close frame before dropping the TCP
connection (a dead link found by the watchdog would otherwise hold up the reconnect)."""


@dataclass(frozen=True)
class Closed:
    """How a connection ended: the server's close code (1006 when there was none)."""

    code: int
    reason: str = ""


class ConnectionEnded(Exception):
    """Raised by ``open_connection`` when the connection ends before ``welcome``."""

    def __init__(self, closed: Closed) -> None:
        super().__init__(f"closed {closed.code} {closed.reason}".strip())
        self.closed = closed


class Connection:
    """An open, welcomed WebSocket speaking one codec."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool], codec: Codec) -> None:
        self.ws = ws
        self.codec = codec
        self._frame = aiohttp.WSMsgType.BINARY if codec.binary else aiohttp.WSMsgType.TEXT

    @property
    def is_open(self) -> bool:
        return not self.ws.closed

    async def send(self, msg: msgspec.Struct) -> None:
        """Encode and send one message (text frame for JSON, binary for MessagePack)."""
        await self.ws.send_frame(self.codec.encode(msg), self._frame)

    async def receive(self, silence_s: float | None = None) -> ServerMessage | Closed:
        """The next server message, or ``Closed`` when the connection ended.

        Raises ``TimeoutError`` when no frame of any kind arrived within ``silence_s``.
        Frames that do not decode (e.g. event types newer than this client) are
        logged and skipped.
        """
        while True:
            msg = await self.ws.receive(timeout=silence_s)
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                try:
                    return self.codec.decode_server(msg.data)
                except DecodeError as error:
                    log.warning("ignoring a server frame that does not decode: %s", error)
                    continue
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                code = self.ws.close_code if self.ws.close_code is not None else ABNORMAL
                return Closed(code, msg.extra or "")
            if msg.type is aiohttp.WSMsgType.ERROR:
                return Closed(self.ws.close_code or ABNORMAL, str(msg.data))
            # CLOSED (closed locally or the transport went away).
            return Closed(self.ws.close_code or ABNORMAL, "connection lost")

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode())


async def open_connection(
    session: aiohttp.ClientSession,
    url: str,
    *,
    codec: Codec,
    credentials: Credentials,
    resume_from: int | None,
    client_name: str | None,
    handshake_timeout: float,
    max_msg_size: int,
) -> tuple[Connection, Welcome]:
    """Upgrade, send ``hello`` and wait for ``welcome``.

    Raises ``ConnectionEnded`` when the server closes first (e.g. 4001),
    ``HandshakeRejected`` when the upgrade is refused with 401/403, and
    ``aiohttp.ClientError``/``OSError``/``TimeoutError`` for network trouble.
    """
    try:
        async with asyncio.timeout(handshake_timeout):
            ws = await session.ws_connect(
                url,
                protocols=(codec.name,),
                headers=credentials.upgrade_headers(),
                origin=credentials.origin,
                autoping=True,
                max_msg_size=max_msg_size,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
    except aiohttp.WSServerHandshakeError as error:
        if error.status == 401:
            raise HandshakeRejected(401, CloseCode.NOT_AUTHENTICATED, error.message) from error
        if error.status == 403:
            raise HandshakeRejected(403, CloseCode.FORBIDDEN, error.message) from error
        raise
    if ws.protocol not in (None, codec.name):
        await ws.close()
        raise ConnectionEnded(Closed(ABNORMAL, f"server chose sub-protocol {ws.protocol!r}"))
    if ws.protocol is None and codec.binary:
        # The server fell back to JSON: it does not know the MessagePack sub-protocol.
        await ws.close()
        raise ConnectionEnded(Closed(ABNORMAL, f"server does not speak {codec.name}"))
    conn = Connection(ws, codec)
    try:
        await conn.send(
            Hello(token=credentials.hello_token(), resume_from=resume_from, client=client_name)
        )
        async with asyncio.timeout(handshake_timeout):
            while True:
                msg = await conn.receive()
                if isinstance(msg, Closed):
                    raise ConnectionEnded(msg)
                if isinstance(msg, Welcome):
                    return conn, msg
                log.warning("ignoring %s before welcome", type(msg).__name__)
    except BaseException:
        await conn.close()
        raise
