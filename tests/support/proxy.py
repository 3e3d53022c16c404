"""A TCP proxy on loopback for injecting network faults into a real connection.

The app (or a test client) connects to the proxy's port instead of the real server's;
the test then, for real:

- ``cut()`` — close every proxied connection and stop listening, so new connections are
  refused (a server that went down); ``heal()`` listens again on the same port;
- ``stall()`` — stop forwarding (both ways, or one direction) without closing anything,
  so writes pile up in kernel buffers and reads wait (a server or a network path that
  hangs); ``resume()`` forwards again;
- ``downstream_bytes_per_s`` — forward the target's bytes to the client at that rate (a
  slow but steady reader);
- ``recv_buffer`` — a small receive buffer on the proxy's sockets, so a stalled
  direction fills up after a few KiB rather than megabytes of loopback autotuning.

It uses plain non-blocking sockets: while a direction is stalled nothing at all is read
from its source, so the sender's kernel buffer really fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CHUNK = 16384


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *,
                 downstream_bytes_per_s: float | None = None,
                 recv_buffer: int | None = None, unix_path: str | None = None) -> None:
        self.target = (target_host, target_port)
        self.unix_path = unix_path
        """Forward to this Unix socket instead (an embedded PostgreSQL)."""
        self.downstream_bytes_per_s = downstream_bytes_per_s
        self.recv_buffer = recv_buffer
        self.port = 0
        self.connections = 0
        """Connections accepted so far."""
        self.downstream_bytes = 0
        """Bytes forwarded from the target to clients so far."""
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._sockets: set[socket.socket] = set()
        self._upstream_open = asyncio.Event()
        self._downstream_open = asyncio.Event()
        self._upstream_open.set()
        self._downstream_open.set()

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> TcpProxy:
        self._listen()
        return self

    async def close(self) -> None:
        await self.cut()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_task = asyncio.create_task(self._accept(listener), name="proxy-accept")

    @classmethod
    def for_url(cls, url: str, **options: Any) -> TcpProxy:
        """A proxy to the server of ``url`` (TCP, or a PostgreSQL DSN's Unix socket
        given as ``?host=/dir``); start it, then connect to ``url_for(url)``."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        socket_dir = query.get("host", "")
        port = parts.port or 5432
        if socket_dir.startswith("/"):
            return cls("", port, unix_path=f"{socket_dir}/.s.PGSQL.{port}", **options)
        return cls(parts.hostname or "127.0.0.1", port, **options)

    def url_for(self, url: str) -> str:
        """``url`` (e.g. a PostgreSQL DSN) with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    # --- faults -----------------------------------------------------------------------------
    async def cut(self) -> None:
        """Close every connection and stop listening (new connections are refused)."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        # Cancel first (a pending sock_recv unregisters its fd), then close what is left.
        for task in list(self._pumps):
            task.cancel()
        if self._pumps:
            await asyncio.gather(*self._pumps, return_exceptions=True)
        self._pumps.clear()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()

    def heal(self) -> None:
        """Listen again on the same port after ``cut``."""
        if self._listener is None:
            self._listen()

    def stall(self, *, upstream: bool = True, downstream: bool = True) -> None:
        """Stop forwarding client→target (upstream) and/or target→client (downstream)."""
        if upstream:
            self._upstream_open.clear()
        if downstream:
            self._downstream_open.clear()

    def resume(self) -> None:
        self._upstream_open.set()
        self._downstream_open.set()

    # --- forwarding ---------------------------------------------------------------------------
    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(listener)
            self.connections += 1
            self._track(client)
            task = asyncio.create_task(self._connect(client))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    def _track(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if self.recv_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
        self._sockets.add(sock)

    async def _connect(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_UNIX if self.unix_path else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        self._track(upstream)  # before connect: the buffer size shapes the TCP window
        try:
            await loop.sock_connect(upstream, self.unix_path or self.target)
            pumps = [
                asyncio.create_task(self._pump(client, upstream, self._upstream_open, None)),
                asyncio.create_task(self._pump(upstream, client, self._downstream_open,
                                               self.downstream_bytes_per_s)),
            ]
            try:
                # Either side closing ends the pair (a half-close is not needed here).
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._drop(client, upstream)

    async def _pump(self, source: socket.socket, sink: socket.socket, gate: asyncio.Event,
                    rate: float | None) -> None:
        loop = asyncio.get_running_loop()
        downstream = rate is not None or gate is self._downstream_open
        chunk = CHUNK if rate is None else max(256, min(CHUNK, int(rate / 50)))
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            while True:
                await gate.wait()
                data = await loop.sock_recv(source, chunk)
                if not data:
                    return
                await gate.wait()  # stalled while this chunk was read: hold it
                await loop.sock_sendall(sink, data)
                if downstream:
                    self.downstream_bytes += len(data)
                if rate is not None:
                    # Simulated bandwidth: stay at ``rate`` bytes per second on average.
                    sent += len(data)
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()


def shrink_send_buffers(client: Any, size: int = 8192) -> int:
    """Give every socket the test server has accepted so far a small kernel send buffer
    (loopback otherwise autotunes it to megabytes, so a client that stops reading would
    take that much before the server notices). Returns how many sockets it changed."""
    server = client.server.runner.server
    changed = 0
    for handler in server.connections:
        transport = handler.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            changed += 1
    return changed
