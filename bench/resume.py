"""Issue 19 benchmark: resume of 1,000 missed events against a plain SQL read of the rows.

    python3 dev.py bench resume        # ~15 s, prints figures and ratios

A user missed RESUME_EVENTS durable events (appended straight through the server's
``EventStream`` from this process). Trials alternate, medians are reported:

- plain SQL (the baseline the target is set against): this process reads the user's
  rows with asyncpg — ``SELECT seq, payload FROM events WHERE user_id = $1 AND seq > 0
  ORDER BY seq`` — and nothing else;
- raw aiohttp + asyncpg (context: what any server pays to put the rows on a socket): a
  server (this script in ``raw-resume``
  mode) that answers a frame by running that query and writing every payload as a frame;
  time from sending the frame to receiving the last event;
- petspark: a new socket (already upgraded) sends ``hello {resume_from: 0}``; time from
  sending it to receiving the last of the 1,000 events (presence, last_seq, the resume
  check, the welcome, the catch-up read and the writes all included).

Both sockets are read by ``FrameCounter``, a minimal client that counts frames in the
raw bytes (an aiohttp client spends ~10 ms of its own receiving 1,000 messages, more
than the servers do).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    machine,
    petspark_server,
    register_users,
    script_server,
    temp_dir,
    throwaway_database,
)

RESUME_EVENTS = 1000
TRIALS = int(os.environ.get("RESUME_TRIALS", "7"))
SUBPROTOCOL = "petspark.v1.json"
SCRIPT = os.path.abspath(__file__)
READ_SQL = "SELECT seq, payload FROM events WHERE user_id = $1 AND seq > $2 ORDER BY seq"
HELLO = '{"type":"hello","resume_from":0,"client":"bench/1"}'


# --- raw aiohttp + asyncpg resume server (context baseline) -------------------------------
def run_raw_resume(port: int) -> None:
    import uvloop
    from aiohttp import web

    state: dict[str, asyncpg.Pool] = {}

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        user_id = request.query["user"]
        ws = web.WebSocketResponse(heartbeat=50.0, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                for row in await state["pool"].fetch(READ_SQL, user_id, 0):
                    await ws.send_frame(row["payload"], aiohttp.WSMsgType.TEXT)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def no_reset(conn: asyncpg.Connection) -> None:
        return None  # as the server's pool: no reset query after each release

    async def open_pool(app: web.Application) -> None:
        state["pool"] = await asyncpg.create_pool(os.environ["RAW_DATABASE_URL"], min_size=1,
                                                  max_size=4, reset=no_reset)

    app = web.Application()
    app.on_startup.append(open_pool)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the three measurements ---------------------------------------------------------------
async def append_events(pool: asyncpg.Pool, user_id: str) -> None:
    from protocol.notifications import NotificationEvent
    from protocol.objects import Notification
    from server.observability.metrics import Metrics
    from server.realtime.stream import EventStream

    async def no_publish(appended: object) -> None:
        return None

    stream = EventStream(pool, no_publish, Metrics())
    for start in range(0, RESUME_EVENTS, 100):
        async with stream.transaction() as tx:
            for _ in range(start, min(start + 100, RESUME_EVENTS)):
                await tx.append([user_id], NotificationEvent(seq=0, notification=Notification(
                    id=str(uuid.uuid4()), kind="bench", title="bench resume", body="",
                    data={}, created_at=datetime.now(UTC))))


async def plain_sql(pool: asyncpg.Pool, user_id: str) -> float:
    async with pool.acquire() as conn:
        t0 = time.perf_counter()
        rows = await conn.fetch(READ_SQL, user_id, 0)
        elapsed = time.perf_counter() - t0
    if len(rows) != RESUME_EVENTS:
        raise RuntimeError(f"read {len(rows)} rows, expected {RESUME_EVENTS}")
    return elapsed


class FrameCounter:
    """A minimal WebSocket client for the receive side: the upgrade by hand, then frames
    counted straight from the socket's bytes (server frames are unmasked, and these are
    never fragmented), so the client's own cost stays far below the server's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str]) -> FrameCounter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await reader.readuntil(b"\r\n\r\n")
        if not response.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {response[:200]!r}")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        payload = bytearray(text.encode())
        mask = os.urandom(4)
        for i in range(len(payload)):
            payload[i] ^= mask[i & 3]
        assert len(payload) < 126
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + payload)

    async def receive_events(self, first: str) -> float:
        """Send ``first``; seconds until the RESUME_EVENTS-th event (seq RESUME_EVENTS)."""
        got = 0
        last = b""
        buf = b""
        at = 0
        t0 = time.perf_counter()
        self.send_text(first)
        while got < RESUME_EVENTS:
            chunk = await asyncio.wait_for(self.reader.read(1 << 20), timeout=30)
            if not chunk:
                raise RuntimeError(f"resume socket closed after {got} events")
            buf = buf[at:] + chunk
            at = 0
            while len(buf) - at >= 2:
                length = buf[at + 1] & 0x7F
                head = 2
                if length == 126:
                    head, length = 4, int.from_bytes(buf[at + 2:at + 4], "big")
                elif length == 127:
                    head, length = 10, int.from_bytes(buf[at + 2:at + 10], "big")
                if len(buf) - at < head + length:
                    break
                payload = buf[at + head:at + head + length]
                at += head + length
                if payload.startswith(b'{"type":"notification"'):
                    got += 1
                    last = payload
        elapsed = time.perf_counter() - t0
        if got != RESUME_EVENTS or f'"seq":{RESUME_EVENTS},'.encode() not in last:
            raise RuntimeError(f"resume: {got}/{RESUME_EVENTS} events, last {last[:80]!r}")
        return elapsed

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def raw_resume(raw: ServerProcess, user_id: str) -> float:
    client = await FrameCounter.open(raw.port, f"/ws?user={user_id}", {})
    try:
        return await client.receive_events('{"type":"resume"}')
    finally:
        await client.close()


async def our_resume(ours: ServerProcess, token: str) -> float:
    client = await FrameCounter.open(ours.port, "/ws", {
        "Authorization": f"Bearer {token}", "Sec-WebSocket-Protocol": SUBPROTOCOL})
    try:
        return await client.receive_events(HELLO)
    finally:
        await client.close()


async def bench(admin_dsn: str) -> None:
    print(f"resume bench — {machine()}")
    print(f"  {RESUME_EVENTS} missed events of one user, {TRIALS} alternating trials "
          "(median reported)")
    print("  petspark: python -m server (uvloop), PostgreSQL, single node, LOG_LEVEL=warning; "
          "the load\n  generator, PostgreSQL and the servers share the 2 cores")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")
    sql_s: list[float] = []
    raw_s: list[float] = []
    our_s: list[float] = []
    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as data_dir:
            ours = petspark_server(dsn, data_dir)
            raw = script_server(SCRIPT, "raw-resume", "raw aiohttp+asyncpg")
            raw.env["RAW_DATABASE_URL"] = dsn
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                await ours.start()
                await raw.start()
                [(user_id, token)] = await register_users(ours.base, 1)
                await append_events(pool, user_id)
                # Warm-up: prepared statements, first-use caches on every side.
                await plain_sql(pool, user_id)
                await raw_resume(raw, user_id)
                await our_resume(ours, token)
                for trial in range(1, TRIALS + 1):
                    sql_s.append(await plain_sql(pool, user_id))
                    raw_s.append(await raw_resume(raw, user_id))
                    our_s.append(await our_resume(ours, token))
                    print(f"  trial {trial}: plain SQL {sql_s[-1] * 1000:6.2f} ms, raw "
                          f"aiohttp+asyncpg {raw_s[-1] * 1000:6.2f} ms, petspark "
                          f"{our_s[-1] * 1000:6.2f} ms")
            finally:
                await pool.close()
                ours.stop()
                raw.stop()

    sql, rawm, our = (statistics.median(x) for x in (sql_s, raw_s, our_s))
    print("\n[results] (medians)")
    print(f"  resume of {RESUME_EVENTS} events: petspark {our * 1000:.2f} ms vs plain SQL read "
          f"{sql * 1000:.2f} ms = {our / sql:.1f}x (target <= 5x: "
          f"{'met' if our / sql <= 5 else 'MISSED'})")
    print(f"    vs raw aiohttp+asyncpg writing the same rows to a socket {rawm * 1000:.2f} ms "
          f"= {our / rawm:.2f}x")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "raw-resume":
        run_raw_resume(int(sys.argv[2]))
        return
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn:
        asyncio.run(asyncio.wait_for(bench(admin_dsn), timeout=300))


if __name__ == "__main__":
    main()
