"""Issue 4 benchmark: the WebSocket gateway against a raw aiohttp echo server.

    python3 dev.py bench gateway       # ~1 min, prints figures and ratios

Both servers run as subprocesses on uvloop (``python -m server`` installs uvloop
itself; the raw server is this script in ``raw-echo`` mode); the load generator is
this process (uvloop, pre-encoded frames, replies counted, not decoded).

1. Round trips/s over 100 connections for a fixed time: a command → reply through
   our full path (JSON decode to the typed command, rate bucket, dispatch table,
   reply encoded, queued, written by the connection's writer task) vs. raw echo.
2. RSS per 1,000 idle connections: hold 5,000 sockets (ours authenticated, after
   hello/welcome) and compare the server process's RSS growth.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import psutil

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    bounded_gather,
    machine,
    petspark_server,
    register_users,
    script_server,
    temp_dir,
    throwaway_database,
)

CONNECTIONS = 100
WARMUP_S = 1.0
MEASURE_S = 4.0
TRIALS = 3
FIRST_REPLY: dict[tuple[str, str], str] = {}  # (server name, frame) -> its first reply
IDLE_CONNECTIONS = 5000
IDLE_USERS = 50  # x 100 sockets each
OPEN_CONCURRENCY = 100
SUBPROTOCOL = "petspark.v1.json"
# The gateway's own cost: a typed command decoded, rate-limited, dispatched and
# answered through the outbox with no I/O (an access token that fails its
# signature check is refused before any database lookup).
COMMAND = '{"type":"auth.refresh","id":"c1","token":"not.a.token"}'
# A real command answered `ok`: one indexed PostgreSQL query per round trip.
DB_COMMAND = '{"type":"pets.mine","id":"c1"}'
HELLO = '{"type":"hello","client":"bench/1"}'
PONG = '{"type":"pong"}'
SCRIPT = os.path.abspath(__file__)


# --- raw aiohttp echo server (the baseline) --------------------------------------------
def run_raw_echo(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=50.0, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- client side --------------------------------------------------------------------------
Opener = Callable[[aiohttp.ClientSession, int], Awaitable[aiohttp.ClientWebSocketResponse]]


def petspark_opener(server: ServerProcess, tokens: list[str]) -> Opener:
    async def open_one(session: aiohttp.ClientSession, i: int) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(
            server.ws_url, protocols=(SUBPROTOCOL,),
            headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"}, autoping=True)
        await ws.send_str(HELLO)
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT or '"type":"welcome"' not in msg.data:
            raise RuntimeError(f"no welcome: {msg}")
        return ws
    return open_one


def raw_opener(server: ServerProcess) -> Opener:
    async def open_one(session: aiohttp.ClientSession, i: int) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(server.ws_url, autoping=True)
        await ws.send_str(HELLO)  # one echo, so both sides have exchanged a frame
        await ws.receive(timeout=30)
        return ws
    return open_one


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))


async def round_trips(server: ServerProcess, opener: Opener,
                      frame: str) -> tuple[float, float, str]:
    """Round trips/s over CONNECTIONS sockets, each in a send→receive loop; and CPU use."""
    async with new_session() as session:
        sockets = await bounded_gather(
            OPEN_CONCURRENCY,
            [lambda i=i: opener(session, i) for i in range(CONNECTIONS)])  # type: ignore[misc]
        first: list[str] = []
        counting = False
        count = 0
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + WARMUP_S + MEASURE_S

        async def drive(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal count
            send, receive = ws.send_str, ws.receive
            while loop.time() < stop_at:
                await send(frame)
                while True:
                    msg = await receive(timeout=10)
                    data = msg.data
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise RuntimeError(f"unexpected {msg}")
                    if data.startswith('{"type":"ping"'):
                        await send(PONG)
                        continue
                    break
                if not first:
                    first.append(data)
                    FIRST_REPLY.setdefault((server.name, frame), data)
                if counting:
                    count += 1

        tasks = [asyncio.create_task(drive(ws)) for ws in sockets]
        await asyncio.sleep(WARMUP_S)
        server_proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
        me = psutil.Process()
        s0, c0 = sum(server_proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        counting = True
        t0 = time.perf_counter()
        await asyncio.sleep(MEASURE_S)
        counting = False
        elapsed = time.perf_counter() - t0
        s1, c1 = sum(server_proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        for ws in sockets:
            await ws.close()
    server_us = 1e6 * (s1 - s0) / max(count, 1)
    cpu = (f"server {server_us:.1f} CPU-µs per round trip; server CPU "
           f"{100 * (s1 - s0) / elapsed:.0f}%, "
           f"load generator CPU {100 * (c1 - c0) / elapsed:.0f}%")
    return count / elapsed, server_us, cpu


async def idle_memory(server: ServerProcess, opener: Opener) -> float:
    """Server RSS growth per 1,000 idle sockets, holding IDLE_CONNECTIONS."""
    async with new_session() as session:
        # Warm up: first-connection allocations (imports, caches) are not per socket.
        warm = await bounded_gather(20, [lambda i=i: opener(session, i)  # type: ignore[misc]
                                         for i in range(50)])
        for ws in warm:
            await ws.close()
        await asyncio.sleep(1.0)
        before = server.rss()
        t0 = time.perf_counter()
        sockets = await bounded_gather(
            OPEN_CONCURRENCY,
            [lambda i=i: opener(session, i) for i in range(IDLE_CONNECTIONS)])  # type: ignore[misc]
        opened_s = time.perf_counter() - t0
        await asyncio.sleep(2.0)
        after = server.rss()
        per_1000 = (after - before) / (IDLE_CONNECTIONS / 1000)
        print(f"    {len(sockets)} sockets open in {opened_s:.1f}s; RSS {before / 2**20:.1f} → "
              f"{after / 2**20:.1f} MiB; {per_1000 / 2**20:.2f} MiB per 1,000 "
              f"({per_1000 / 1000 / 1024:.1f} KiB per socket)")
        await bounded_gather(200, [ws.close for ws in sockets])
    return per_1000


async def bench(admin_dsn: str) -> None:
    print(f"gateway bench — {machine()}")
    print(f"  round trips: {CONNECTIONS} connections, {TRIALS} alternating trials of "
          f"{WARMUP_S:.0f}s warm-up + {MEASURE_S:.0f}s per server (median reported); "
          f"idle memory: {IDLE_CONNECTIONS} sockets")
    print("  petspark server: python -m server (uvloop), PostgreSQL, single node (in-process "
          "broker),\n  LOG_LEVEL=warning, rate limits raised, argon2 lowered for registration "
          "(PASSWORD_HASH_TIME_COST=1, PASSWORD_HASH_MEMORY_KIB=8)")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")

    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as data_dir:
            raw = script_server(SCRIPT, "raw-echo", "raw aiohttp")
            ours = petspark_server(dsn, data_dir)
            try:
                await raw.start()
                await ours.start()
                users = await register_users(ours.base, IDLE_USERS)
                tokens = [token for _, token in users]
                print(f"  registered {len(users)} users over HTTP (reused: "
                      f"{IDLE_CONNECTIONS // IDLE_USERS} sockets each)")

                print("\n[idle memory]")
                print("  raw aiohttp echo:")
                raw_mem = await idle_memory(raw, raw_opener(raw))
                print("  petspark gateway (authenticated, after hello/welcome):")
                our_mem = await idle_memory(ours, petspark_opener(ours, tokens))

                print("\n[round trips]")
                raw_runs: list[float] = []
                our_runs: list[float] = []
                raw_us: list[float] = []
                our_us: list[float] = []
                for trial in range(1, TRIALS + 1):
                    rate, us, cpu = await round_trips(raw, raw_opener(raw), COMMAND)
                    raw_runs.append(rate)
                    raw_us.append(us)
                    print(f"  trial {trial} raw echo:         {rate:8,.0f}/s  ({cpu})")
                    rate, us, cpu = await round_trips(ours, petspark_opener(ours, tokens),
                                                      COMMAND)
                    our_runs.append(rate)
                    our_us.append(us)
                    print(f"  trial {trial} petspark command: {rate:8,.0f}/s  ({cpu})")
                rate, us, cpu = await round_trips(ours, petspark_opener(ours, tokens),
                                                  DB_COMMAND)
                db_rate = rate
                print(f"  petspark pets.mine (ok, one query): {rate:8,.0f}/s  ({cpu})")
                for (name, frame), reply in FIRST_REPLY.items():
                    if name == ours.name:  # the echo's reply is the frame itself
                        print(f"  {name} reply to {frame[:40]}: {reply[:110]}")
            finally:
                raw.stop()
                ours.stop()

    raw_rtt = statistics.median(raw_runs)
    our_rtt = statistics.median(our_runs)
    print("\n[results]")
    print(f"  command round trips: petspark {our_rtt:,.0f}/s vs raw echo {raw_rtt:,.0f}/s "
          f"= {100 * our_rtt / raw_rtt:.0f}% (target >= 60%: "
          f"{'met' if our_rtt / raw_rtt >= 0.6 else 'MISSED'})")
    print("    (the command is `auth.refresh` with a token that fails its signature check: "
          "decode,\n     rate limit, dispatch, handler, encoded `error` reply — no I/O)")
    print(f"  a real command, pets.mine → ok with one PostgreSQL query: {db_rate:,.0f}/s "
          f"({100 * db_rate / raw_rtt:.0f}% of the echo; the query dominates)")
    raw_cost, our_cost = statistics.median(raw_us), statistics.median(our_us)
    print(f"  server CPU per round trip: petspark {our_cost:.1f} µs vs raw {raw_cost:.1f} µs "
          f"-> CPU-bound capacity {100 * raw_cost / our_cost:.0f}% of raw (the machine is "
          f"shared,\n    so this is the steadier figure when neither process gets a whole core)")
    print(f"  idle memory: petspark {our_mem / 2**20:.2f} MiB vs raw {raw_mem / 2**20:.2f} MiB "
          f"per 1,000 sockets = {our_mem / raw_mem:.2f}x (target <= 1.5x: "
          f"{'met' if our_mem / raw_mem <= 1.5 else 'MISSED'})")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "raw-echo":
        run_raw_echo(int(sys.argv[2]))
        return
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn:
        asyncio.run(asyncio.wait_for(bench(admin_dsn), timeout=300))


if __name__ == "__main__":
    main()
