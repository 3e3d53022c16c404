"""Issue 15 benchmark: room fan-out of one live stream, beside a raw aiohttp broadcast.

    python3 dev.py bench live                      # 2,000 viewers, 50 chatters x 10 msg/s
    python3 dev.py bench live --viewers 500 --duration 5

- petspark: two server nodes (``python -m server`` subprocesses, uvloop) sharing
  PostgreSQL and Redis; one host goes live (LIVE_MEDIA=livekit with a made-up
  deployment: tokens are minted, nothing contacts LiveKit, and there is no p2p cap);
  VIEWERS viewer sockets (JSON) join, half on each node. CHATTERS of them send
  ``live.chat`` at RATE msg/s each for DURATION s; every message goes to every member
  (room channel per node on Redis, one frame per message per node, local fan-out).
- raw aiohttp: one process whose every socket is a member; a text frame from any of
  them is sent to all with ``send_str`` (no auth, no broker, no encoding, no limits).
  Same sockets, same chatters, same rates, frames of the same size.
- Steps: ``--rates`` (default 10 msg/s per chatter, the issue's load — ~1 M deliveries/s
  offered, far past what two cores deliver, so both saturate and the ratio compares
  saturated throughput — then 0.5 msg/s, which this machine sustains, for latency).
- Figures: deliveries per second (frames received by the viewers from the first send
  to the last receipt), p50/p99 send→deliver (the send time is in the message), server
  CPU over the window (both nodes added: % of one core), sockets closed on the way
  (4008: a viewer too slow for its outbox), and the ratio petspark / raw.

The load generator (this process) reads every frame with a lean parser; on a 2-core
machine it competes with the servers, PostgreSQL and Redis. Bounded: every phase has a
deadline; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import psutil

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    bench_redis,
    bounded_gather,
    machine,
    percentile,
    petspark_server,
    register_users,
    script_server,
    temp_dir,
    throwaway_database,
)
from server.resources.dev_services import delete_prefix

SCRIPT = os.path.abspath(__file__)
SUBPROTOCOL = "petspark.v1.json"
MARK = '"body":"bench '
OPEN_CONCURRENCY = 100
DRAIN_S = 15.0
FILLER = "x" * 40  # the body's padding: a realistic chat line


# --- raw aiohttp baseline -------------------------------------------------------------------
def run_raw_room(port: int) -> None:
    import uvloop
    from aiohttp import web

    members: set[web.WebSocketResponse] = set()

    async def member(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=50.0, compress=False)
        await ws.prepare(request)
        members.add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other in list(members):
                        await other.send_str(msg.data)
        finally:
            members.discard(ws)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", member)
    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def raw_frame(stamp: float) -> str:
    """The shape and size of a petspark live.chat event."""
    return ('{"type":"live.chat","stream_id":"' + "0" * 36 + '","message":{"id":"' + "1" * 36
            + '","stream_id":"' + "0" * 36 + '","sender":{"id":"' + "2" * 36
            + '","display_name":"Bench","role":"user"},"body":"bench ' + f"{stamp:.6f} "
            + FILLER + '","created_at":"2026-12-01T10:00:00.000000Z"}}')


# --- load generator -----------------------------------------------------------------------------
@dataclass
class Members:
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    closes: dict[int, int] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._read(ws)) for ws in self.sockets]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        mark, n = MARK, len(MARK)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data: str = msg.data
            i = data.find(mark)
            if i < 0 or data.startswith('{"type":"ok"'):  # a chatter's own reply
                if data.startswith('{"type":"ping"'):
                    await ws.send_str('{"type":"pong"}')
                continue
            now = time.time()
            start = i + n
            self.latencies.append(now - float(data[start:data.index(" ", start)]))
            self.received += 1
            self.last_at = now
        code = ws.close_code or 0
        self.closes[code] = self.closes.get(code, 0) + 1

    async def close(self) -> None:
        await bounded_gather(200, [ws.close for ws in self.sockets])
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def chat_load(chatters: list[aiohttp.ClientWebSocketResponse], rate: float,
                    duration: float, frame: object) -> int:
    """Each chatter sends at ``rate`` msg/s for ``duration`` s, spread evenly."""
    sent = 0
    start = time.monotonic() + 0.1

    async def one(k: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal sent
        offset = k / (rate * len(chatters))
        i = 0
        while True:
            at = start + offset + i / rate
            # Stop at the deadline even when sends are held up by backpressure (the
            # rest is not sent: "sent" counts what was).
            if at - start > duration or time.monotonic() - start > duration:
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send_str(frame(k, i))  # type: ignore[operator]
            sent += 1
            i += 1

    await asyncio.gather(*(one(k, ws) for k, ws in enumerate(chatters)))
    return sent


def cpu_seconds(procs: list[ServerProcess]) -> float:
    total = 0.0
    for p in procs:
        assert p.proc is not None
        t = psutil.Process(p.proc.pid).cpu_times()
        total += t.user + t.system
    return total


@dataclass
class Figures:
    name: str
    sent: int
    expected: int
    received: int
    rate: float
    p50: float
    p99: float
    cpu: float
    closes: dict[int, int]

    def line(self) -> str:
        closed = {c: n for c, n in self.closes.items() if c not in (1000,)}
        return (f"  {self.name}: {self.received:,}/{self.expected:,} delivered -> "
                f"{self.rate:,.0f} deliveries/s; send→deliver p50 {self.p50 * 1000:.1f} ms, "
                f"p99 {self.p99 * 1000:.1f} ms; server CPU {self.cpu * 100:.0f}% of a core"
                + (f"; closed during the run: {closed}" if closed else ""))


async def measure(name: str, members: Members, chatters: list[aiohttp.ClientWebSocketResponse],
                  procs: list[ServerProcess], rate: float, duration: float, frame: object,
                  viewers: int) -> Figures:
    members.start()
    await asyncio.sleep(1.0)  # joins settle, first viewer counts go out
    members.latencies.clear()
    members.received = 0
    cpu0, t0 = cpu_seconds(procs), time.time()
    members.first_at = t0
    sent = await chat_load(chatters, rate, duration, frame)
    expected = sent * viewers
    deadline = time.monotonic() + DRAIN_S
    while members.received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    cpu1 = cpu_seconds(procs)
    span = max(members.last_at - t0, 1e-9)
    figures = Figures(name, sent, expected, members.received, members.received / span,
                      percentile(members.latencies, 50), percentile(members.latencies, 99),
                      (cpu1 - cpu0) / span, dict(members.closes))
    print(figures.line(), flush=True)
    return figures


# --- phases ------------------------------------------------------------------------------------
async def raw_phase(raw: ServerProcess, viewers: int, chatters: int, rate: float,
                    duration: float) -> Figures:
    members = Members()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        members.sockets = await bounded_gather(OPEN_CONCURRENCY, [
            lambda: session.ws_connect(raw.ws_url) for _ in range(viewers)])
        try:
            return await measure(
                "raw aiohttp broadcast (send_str loop)", members, members.sockets[:chatters],
                [raw], rate, duration, lambda k, i: raw_frame(time.time()), viewers)
        finally:
            await members.close()


async def open_member(session: aiohttp.ClientSession, url: str, token: str, stream_id: str
                      ) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, protocols=(SUBPROTOCOL,),
                                  headers={"Authorization": f"Bearer {token}"})
    await ws.send_str('{"type":"hello","client":"bench/1"}')
    msg = await ws.receive(timeout=30)
    if msg.type != aiohttp.WSMsgType.TEXT or '"type":"welcome"' not in msg.data:
        raise RuntimeError(f"no welcome: {msg}")
    await ws.send_str('{"type":"live.join","id":"j","stream_id":"' + stream_id + '"}')
    while True:
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"join: {msg}")
        if msg.data.startswith('{"type":"ok"'):
            return ws
        if msg.data.startswith('{"type":"error"'):
            raise RuntimeError(f"join refused: {msg.data}")


async def petspark_phase(nodes: list[ServerProcess], users: list[tuple[str, str]],
                         chatters: int, rate: float, duration: float) -> Figures:
    host_token = users[0][1]
    viewers = users[1:]
    members = Members()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        host = await session.ws_connect(nodes[0].ws_url, protocols=(SUBPROTOCOL,),
                                        headers={"Authorization": f"Bearer {host_token}"})
        await host.send_str('{"type":"hello"}')
        await host.receive(timeout=30)
        await host.send_str('{"type":"live.start","id":"s","title":"bench stream"}')
        reply = (await host.receive(timeout=30)).data
        if not reply.startswith('{"type":"ok"'):
            raise RuntimeError(f"live.start: {reply}")
        stream_id = reply.split('"stream":{"id":"', 1)[1].split('"', 1)[0]
        host_reader = Members(sockets=[host])  # the host gets everything too
        t0 = time.perf_counter()
        members.sockets = await bounded_gather(OPEN_CONCURRENCY, [
            lambda i=i, t=t: open_member(session, nodes[i % len(nodes)].ws_url,  # type: ignore[misc]
                                         t, stream_id)
            for i, (_, t) in enumerate(viewers)])
        print(f"  {len(members.sockets)} viewers joined over {len(nodes)} node(s) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        host_reader.start()
        chat = members.sockets[:chatters]

        def frame(k: int, i: int) -> str:
            return ('{"type":"live.chat","id":"c' + str(i) + '","stream_id":"' + stream_id
                    + '","body":"bench ' + f"{time.time():.6f} " + FILLER + '"}')

        try:
            return await measure(f"petspark room, {len(nodes)} nodes", members, chat, nodes,
                                 rate, duration, frame, len(viewers))
        finally:
            await members.close()
            await host_reader.close()


async def bench(admin_dsn: str, redis_url: str, args: argparse.Namespace) -> None:
    prefix = f"petspark-bench-{secrets.token_hex(4)}:"
    print(f"live room fan-out bench — {machine()}")
    print(f"  one stream, {args.viewers} viewer sockets (JSON) over {args.nodes} node(s), "
          f"{args.chatters} chatters at each of {args.rates} msg/s for {args.duration:g} s; "
          "every message to every viewer")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}", flush=True)
    raw = script_server(SCRIPT, "raw-room", "raw aiohttp")
    results: list[tuple[Figures, Figures]] = []
    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as dir_a, temp_dir() as dir_b:
            extra = {"REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                     "SECRET_KEY": "bench-" + secrets.token_hex(24),
                     "LIVE_MEDIA": "livekit", "LIVEKIT_URL": "wss://livekit.bench.invalid",
                     "LIVEKIT_API_KEY": "APIbench", "LIVEKIT_API_SECRET": secrets.token_hex(24),
                     "LIVE_CHAT_PER_MINUTE": "1000000", "LIVE_START_PER_HOUR": "1000"}
            nodes = [petspark_server(dsn, d, f"node {n}", **extra)
                     for n, d in zip("AB", (dir_a, dir_b), strict=False)][: args.nodes]
            try:
                await raw.start()
                for node in nodes:
                    await node.start()  # one after the other: the first migrates
                t0 = time.perf_counter()
                users = await register_users(nodes[0].base, args.viewers + 1)
                print(f"  registered {len(users)} users over HTTP in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
                for rate in args.rates:
                    print(f"\n[{args.chatters} chatters x {rate:g} msg/s = "
                          f"{args.chatters * rate * args.viewers:,.0f} deliveries/s offered]",
                          flush=True)
                    raw_fig = await raw_phase(raw, args.viewers, args.chatters, rate,
                                              args.duration)
                    ours = await petspark_phase(nodes, users, args.chatters, rate,
                                                args.duration)
                    results.append((raw_fig, ours))
                    await asyncio.sleep(1.0)
                    # The stream ends with its host socket (grace): start a fresh one.
                    users = users[1:] + users[:1]
            finally:
                raw.stop()
                for node in nodes:
                    node.stop()
                await asyncio.to_thread(delete_prefix, redis_url, prefix)

    print("\n[results]")
    for rate, (raw_fig, ours) in zip(args.rates, results, strict=True):
        print(f"  {args.chatters} chatters x {rate:g} msg/s:")
        ratio = ours.rate / raw_fig.rate if raw_fig.rate else float("nan")
        per_core_raw = raw_fig.rate / raw_fig.cpu if raw_fig.cpu else float("nan")
        per_core = ours.rate / ours.cpu if ours.cpu else float("nan")
        print(f"  deliveries/s: petspark {ours.rate:,.0f} vs raw {raw_fig.rate:,.0f} = "
              f"{ratio * 100:.0f}%; per core-second of server CPU: {per_core:,.0f} vs "
              f"{per_core_raw:,.0f} = {per_core / per_core_raw * 100:.0f}%")
        print(f"  send→deliver p50/p99: petspark {ours.p50 * 1000:.1f}/{ours.p99 * 1000:.1f} ms,"
              f" raw {raw_fig.p50 * 1000:.1f}/{raw_fig.p99 * 1000:.1f} ms")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "raw-room":
        run_raw_room(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--chatters", type=int, default=50)
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")],
                        default=[10.0, 0.5],
                        help="msg/s per chatter, one step each (default 10,0.5: the issue's "
                             "load, then one this machine sustains)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of chat")
    parser.add_argument("--nodes", type=int, default=2, choices=(1, 2))
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn, bench_redis() as redis_url:
        asyncio.run(asyncio.wait_for(bench(admin_dsn, redis_url, args), timeout=600))


if __name__ == "__main__":
    main()
