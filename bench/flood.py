"""Issue #17 item 10 benchmark: does a frame flood slow other users down?

    python3 dev.py bench flood         # ~30 s, prints figures and the ratio

One server (``python -m server``, uvloop, default frame budget: WS_FRAMES_PER_S=200,
WS_FRAMES_BURST=400, WS_ABUSE_S=10). Another user sends ``pets.mine`` (an ``ok`` with one
PostgreSQL query) every 20 ms on one socket and we record each round trip:

1. before: MEASURE_S with nothing else going on;
2. during: MEASURE_S while FLOOD_SOCKETS sockets (other users, in a separate process so
   the flood does not slow the measuring client) send ``pong`` frames as fast as they
   can — every one beyond each socket's budget is dropped by the server's reader.

Then the flood goes on until the server closes the flooders 4029 (or FLOOD_MAX_S).

3. control: MEASURE_S while the same flood goes to *another* process (a raw aiohttp server
   that reads and discards every frame, this script in ``sink`` mode). On a small machine
   the flood's client and its server take CPU from everything else, the measured server
   included; this is the latency that costs with no flood reaching our server's loop. The
   ratio that is the gateway's own doing is during / control.

Every loop is bounded in count and time; loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    machine,
    percentile,
    petspark_server,
    register_users,
    script_server,
    temp_dir,
    throwaway_database,
)

SUBPROTOCOL = "petspark.v1.json"
HELLO = '{"type":"hello","client":"bench/1"}'
PONG = '{"type":"pong"}'
COMMAND = '{"type":"pets.mine","id":"c%d"}'
MEASURE_S = 5.0
PACE_S = 0.02  # the measured user's commands: 50/s, well under WS_FRAMES_PER_S
MAX_SAMPLES = 1000
FLOOD_SOCKETS = 4
FLOOD_MAX_S = 25.0  # the flooders stop by then even if never closed
FLOOD_MAX_FRAMES = 20_000_000  # per socket
SCRIPT = os.path.abspath(__file__)


async def open_socket(session: aiohttp.ClientSession, url: str, token: str
                      ) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, protocols=(SUBPROTOCOL,),
                                  headers={"Authorization": f"Bearer {token}"}, autoping=True)
    await ws.send_str(HELLO)
    msg = await ws.receive(timeout=30)
    if msg.type != aiohttp.WSMsgType.TEXT or '"type":"welcome"' not in msg.data:
        raise RuntimeError(f"no welcome: {msg}")
    return ws


# --- the control's sink server ---------------------------------------------------------------
def run_sink(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for _ in ws:
            pass  # read and discard: the cheapest a server can be
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the flooding process ------------------------------------------------------------------
async def run_flood(url: str, seconds: float, tokens: list[str]) -> None:
    """Flood from one socket per token (an empty token: a raw socket, no hello); print one
    JSON line of what happened."""
    async with aiohttp.ClientSession() as session:
        sockets = [await open_socket(session, url, token) if token
                   else await session.ws_connect(url) for token in tokens]
        print(json.dumps({"ready": True}), flush=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        stop_at = started + seconds

        async def flood(ws: aiohttp.ClientWebSocketResponse) -> dict[str, float | int | None]:
            sent = 0

            async def watch() -> None:  # the server's frames (pings, the close)
                while not ws.closed:
                    msg = await ws.receive()
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.ERROR):
                        return

            watcher = asyncio.create_task(watch())
            send = ws.send_str
            try:
                while not ws.closed and sent < FLOOD_MAX_FRAMES and loop.time() < stop_at:
                    await send(PONG)
                    sent += 1
                    if sent % 256 == 0:
                        await asyncio.sleep(0)  # let the watcher see the close
            except (ConnectionError, RuntimeError):
                pass
            closed_after = loop.time() - started if ws.closed else None
            watcher.cancel()
            code = ws.close_code
            await ws.close()
            return {"sent": sent, "code": code, "closed_after_s": closed_after}

        results = await asyncio.gather(*(flood(ws) for ws in sockets))
        elapsed = loop.time() - started
        print(json.dumps({"elapsed_s": elapsed, "sockets": results}), flush=True)


# --- the measuring side --------------------------------------------------------------------
async def round_trips(ws: aiohttp.ClientWebSocketResponse, seconds: float,
                      first_id: int) -> list[float]:
    """Paced pets.mine round trips for ``seconds`` (at most MAX_SAMPLES); seconds each."""
    samples: list[float] = []
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    i = first_id
    while loop.time() < stop_at and len(samples) < MAX_SAMPLES:
        i += 1
        frame = COMMAND % i
        t0 = time.perf_counter()
        await ws.send_str(frame)
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"measured socket: unexpected {msg}")
            if msg.data.startswith('{"type":"ping"'):
                await ws.send_str(PONG)
                continue
            if f'"id":"c{i}"' in msg.data:
                break
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(max(0.0, PACE_S - (time.perf_counter() - t0)))
    return samples


def summary(samples: list[float]) -> str:
    return (f"p50 {1000 * percentile(samples, 50):.2f} ms, p99 "
            f"{1000 * percentile(samples, 99):.2f} ms ({len(samples)} round trips)")


async def start_flood(server: ServerProcess, tokens: list[str],
                      seconds: float = FLOOD_MAX_S) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, "flood", server.ws_url, str(seconds),
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(SCRIPT)),
                 FLOOD_TOKENS=",".join(tokens)))
    line = await read_line(proc, 60)
    if '"ready"' not in line:
        proc.kill()
        raise RuntimeError(f"flood process did not start: {line!r}")
    return proc


async def read_line(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), timeout=timeout)).decode()


async def bench(admin_dsn: str) -> None:
    print(f"flood bench — {machine()}")
    print(f"  measured: one user's pets.mine every {PACE_S * 1000:.0f} ms, {MEASURE_S:.0f} s "
          f"before and {MEASURE_S:.0f} s during a pong flood from {FLOOD_SOCKETS} sockets "
          f"(another process, as fast as it can, at most {FLOOD_MAX_S:.0f} s)")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")
    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as data_dir:
            # The defaults, which bench_env raises for the other benches.
            server = petspark_server(dsn, data_dir, WS_FRAMES_PER_S="200", WS_FRAMES_BURST="400")
            try:
                await server.start()
                users = await register_users(server.base, 1 + FLOOD_SOCKETS)
                tokens = [token for _, token in users]
                async with aiohttp.ClientSession() as session:
                    ws = await open_socket(session, server.ws_url, tokens[0])
                    await round_trips(ws, 1.0, 0)  # warm-up
                    before = await round_trips(ws, MEASURE_S, 10_000)
                    print(f"  before the flood: {summary(before)}")
                    flood = await start_flood(server, tokens[1:])
                    try:
                        during = await round_trips(ws, MEASURE_S, 20_000)
                        print(f"  during the flood: {summary(during)}")
                        line = await read_line(flood, FLOOD_MAX_S + 30)
                    finally:
                        if flood.returncode is None:
                            flood.kill()
                        await asyncio.wait_for(flood.wait(), timeout=10)
                    sink = script_server(SCRIPT, "sink", "sink")
                    try:
                        await sink.start()
                        control_flood = await start_flood(sink, [""] * FLOOD_SOCKETS,
                                                          seconds=MEASURE_S + 1)
                        try:
                            control = await round_trips(ws, MEASURE_S, 30_000)
                            print(f"  control, the flood sent to another process: "
                                  f"{summary(control)}")
                            await read_line(control_flood, MEASURE_S + 30)
                        finally:
                            if control_flood.returncode is None:
                                control_flood.kill()
                            await asyncio.wait_for(control_flood.wait(), timeout=10)
                    finally:
                        sink.stop()
                    await ws.close()
            finally:
                server.stop()
    report = json.loads(line)
    sent = sum(s["sent"] for s in report["sockets"])
    print(f"  flood: {sent:,} pong frames sent in {report['elapsed_s']:.1f} s "
          f"({sent / report['elapsed_s']:,.0f}/s over {FLOOD_SOCKETS} sockets)")
    for n, s in enumerate(report["sockets"], 1):
        after = s["closed_after_s"]
        closed = f"closed {s['code']} after {after:.1f} s" if after is not None else "not closed"
        print(f"    flooder {n}: {s['sent']:,} frames, {closed}")
    p50 = percentile(during, 50) / percentile(before, 50)
    p99 = percentile(during, 99) / percentile(before, 99)
    c50 = percentile(during, 50) / percentile(control, 50)
    c99 = percentile(during, 99) / percentile(control, 99)
    print("\n[results]")
    print(f"  another user's latency during / before the flood: p50 x{p50:.2f}, p99 x{p99:.2f}")
    print(f"  during / control (the flood at another process): p50 x{c50:.2f}, "
          f"p99 x{c99:.2f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "sink":
        run_sink(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        asyncio.run(run_flood(sys.argv[2], float(sys.argv[3]),
                              os.environ["FLOOD_TOKENS"].split(",")))
        return
    with bench_postgres() as admin_dsn:
        asyncio.run(bench(admin_dsn))


if __name__ == "__main__":
    main()
