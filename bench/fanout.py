"""Issue 5 benchmark: durable fan-out, two-node fan-out and resume, beside raw aiohttp broadcast.

    python3 dev.py bench fanout        # ~35 s, prints figures and ratios

- 1,000 users each hold one receiver socket (JSON sub-protocol). A sender node in
  this process — the server's own ``EventStream`` on its own asyncpg pool plus a
  ``RedisBroker`` on the bench's REDIS_URL/REDIS_PREFIX channel, i.e. exactly what
  another server node does — appends EVENTS durable notifications, each addressed
  to all 1,000 users, one transaction per event, back to back. The send time is
  embedded in the notification title, taken before the transaction opens, so the
  latency is append + commit + publish + Redis + fan-out + socket.
- Raw baseline: an aiohttp server (this script in ``raw-broadcast`` mode) that
  sends each frame it gets on a trigger socket to its 1,000 receivers with
  ``send_str`` — no database, no broker.
- Two nodes: the same fan-out with the receivers split 500/500 over two servers
  sharing the database and Redis.
- Resume: a user missed RESUME_EVENTS events; a new socket sends
  ``hello {resume_from: 0}``; time from sending hello to receiving the last event.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp

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

RECEIVERS = 1000
EVENTS = 30  # x 1,000 recipients = 30,000 deliveries per run
RESUME_EVENTS = 1000
RESUME_TRIALS = 5
ROUNDS = 3
OPEN_CONCURRENCY = 100
DELIVERY_TIMEOUT_S = 60.0
SUBPROTOCOL = "petspark.v1.json"
SCRIPT = os.path.abspath(__file__)
MARK = '"title":"bench '


# --- raw aiohttp broadcast server (the baseline) ------------------------------------------
def run_raw_broadcast(port: int) -> None:
    import uvloop
    from aiohttp import web

    receivers: set[web.WebSocketResponse] = set()

    async def receiver(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=50.0, compress=False)
        await ws.prepare(request)
        receivers.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            receivers.discard(ws)
        return ws

    async def trigger(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                for r in list(receivers):
                    await r.send_str(msg.data)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ws", receiver)
    app.router.add_get("/trigger", trigger)
    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- receivers ------------------------------------------------------------------------------
class Receivers:
    """Lean receiver sockets: notification frames are counted and their send time parsed."""

    def __init__(self) -> None:
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.latencies: list[float] = []
        self.received = 0
        self.last_at = 0.0
        self.expected = 0
        self.done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def expect(self, total: int) -> None:
        self.latencies.clear()
        self.received = 0
        self.expected = total
        self.done.clear()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read(ws)) for ws in self.sockets]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data: str = msg.data
            i = data.find(MARK)
            if i < 0:
                if data.startswith('{"type":"ping"'):
                    await ws.send_str('{"type":"pong"}')
                continue
            now = time.time()
            start = i + len(MARK)
            self.latencies.append(now - float(data[start:data.index('"', start)]))
            self.received += 1
            self.last_at = now
            if self.received >= self.expected:
                self.done.set()

    async def close(self) -> None:
        await bounded_gather(200, [ws.close for ws in self.sockets])
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def open_petspark(session: aiohttp.ClientSession, url: str, token: str,
                        hello: str = '{"type":"hello","client":"bench/1"}'
                        ) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, protocols=(SUBPROTOCOL,),
                                  headers={"Authorization": f"Bearer {token}"})
    await ws.send_str(hello)
    msg = await ws.receive(timeout=30)
    if msg.type != aiohttp.WSMsgType.TEXT or '"type":"welcome"' not in msg.data:
        raise RuntimeError(f"no welcome: {msg}")
    return ws


def report(name: str, rec: Receivers, first_send: float, wall_s: float) -> float:
    span = rec.last_at - first_send
    rate = rec.received / span if span > 0 else 0.0
    lat = rec.latencies
    print(f"  {name}: {rec.received:,}/{rec.expected:,} delivered in {span * 1000:.0f} ms "
          f"-> {rate:,.0f} deliveries/s; latency p50 {percentile(lat, 50) * 1000:.1f} ms, "
          f"p99 {percentile(lat, 99) * 1000:.1f} ms, max {max(lat, default=0) * 1000:.1f} ms"
          + (f"; sender busy {wall_s * 1000:.0f} ms" if wall_s else ""))
    return rate


def payload(seq: int) -> str:
    """The same wire shape a petspark notification event has, for the raw server."""
    return ('{"type":"notification","seq":' + str(seq) + ',"notification":{"id":"'
            + str(uuid.uuid4()) + '","kind":"bench","title":"bench ' + f"{time.time():.6f}"
            + '","body":"","data":{},"created_at":"' + datetime.now(UTC).isoformat() + '"}}')


# --- phases -----------------------------------------------------------------------------------
async def raw_phase(raw: ServerProcess) -> float:
    rec = Receivers()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        rec.sockets = await bounded_gather(OPEN_CONCURRENCY, [
            lambda: session.ws_connect(raw.ws_url) for _ in range(RECEIVERS)])
        rec.start()
        trigger = await session.ws_connect(raw.base + "/trigger")
        await asyncio.sleep(0.5)
        rec.expect(EVENTS * RECEIVERS)
        first = time.time()
        for seq in range(1, EVENTS + 1):
            await trigger.send_str(payload(seq))
        sent = time.time() - first
        await asyncio.wait_for(rec.done.wait(), DELIVERY_TIMEOUT_S)
        rate = report("raw aiohttp broadcast (send_str loop)", rec, first, sent)
        await trigger.close()
        await rec.close()
    return rate


class CountingBroker:
    """Wraps the sender node's RedisBroker to record notice sizes."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.node_id: str = inner.node_id  # type: ignore[attr-defined]
        self.sizes: list[int] = []

    async def publish(self, data: bytes) -> None:
        self.sizes.append(len(data))
        await self.inner.publish(data)  # type: ignore[attr-defined]

    async def publish_to(self, messages: list[tuple[str, bytes]]) -> None:
        """Per-node notices (routed): one size per published notice."""
        self.sizes.extend(len(data) for _, data in messages)
        await self.inner.publish_to(messages)  # type: ignore[attr-defined]


def notification(seq_hint: int) -> object:
    from protocol.notifications import NotificationEvent
    from protocol.objects import Notification

    return NotificationEvent(seq=0, notification=Notification(
        id=str(uuid.uuid4()), kind="bench", title=f"bench {time.time():.6f}", body="",
        data={}, created_at=datetime.now(UTC)))


async def our_phase(name: str, urls: list[str], tokens: list[str], user_ids: list[str],
                    stream: object) -> float:
    rec = Receivers()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        rec.sockets = await bounded_gather(OPEN_CONCURRENCY, [
            lambda i=i: open_petspark(session, urls[i % len(urls)], tokens[i])  # type: ignore[misc]
            for i in range(RECEIVERS)])
        rec.start()
        await asyncio.sleep(0.5)
        rec.expect(EVENTS * RECEIVERS)
        first = time.time()
        for i in range(EVENTS):
            event = notification(i)
            async with stream.transaction() as tx:  # type: ignore[attr-defined]
                await tx.append(user_ids, event)
        sent = time.time() - first
        try:
            await asyncio.wait_for(rec.done.wait(), DELIVERY_TIMEOUT_S)
        except TimeoutError:
            print(f"  {name}: TIMED OUT after {DELIVERY_TIMEOUT_S}s")
        rate = report(name, rec, first, sent)
        await rec.close()
    return rate


async def resume_phase(url: str, token: str, user_id: str, stream: object) -> list[float]:
    for start in range(0, RESUME_EVENTS, 100):
        async with stream.transaction() as tx:  # type: ignore[attr-defined]
            for _ in range(start, min(start + 100, RESUME_EVENTS)):
                await tx.append([user_id], notification(0))
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(RESUME_TRIALS):
            ws = await session.ws_connect(url, protocols=(SUBPROTOCOL,),
                                          headers={"Authorization": f"Bearer {token}"})
            got = 0
            last = ""
            t0 = time.perf_counter()
            await ws.send_str('{"type":"hello","resume_from":0,"client":"bench/1"}')
            deadline = t0 + 30
            while got < RESUME_EVENTS and time.perf_counter() < deadline:
                msg = await ws.receive(timeout=30)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"resume socket: {msg}")
                if msg.data.startswith('{"type":"notification"'):
                    got += 1
                    last = msg.data
            times.append(time.perf_counter() - t0)
            if f'"seq":{RESUME_EVENTS},' not in last:
                print(f"  resume: last event is not seq {RESUME_EVENTS}: {last[:80]}")
            if got != RESUME_EVENTS:
                print(f"  resume: only {got}/{RESUME_EVENTS} events")
            await ws.close()
    return times


async def bench(admin_dsn: str, redis_url: str) -> None:
    import asyncpg

    from server.observability.metrics import Metrics
    from server.realtime.broker import RedisBroker, new_node_id
    from server.realtime.node import INLINE_PAYLOAD_LIMIT, Node
    from server.realtime.presence import MemoryPresence
    from server.realtime.routing import RedisRoutes
    from server.resources.redis import create_redis
    from server.settings import Settings

    prefix = f"petspark-bench-{secrets.token_hex(4)}:"
    print(f"fan-out bench — {machine()}")
    print(f"  {RECEIVERS} receiver sockets of {RECEIVERS} users; {EVENTS} events each to all "
          f"{RECEIVERS} users = {EVENTS * RECEIVERS:,} deliveries per run")
    print("  petspark: python -m server (uvloop), PostgreSQL + Redis broker (REDIS_PREFIX "
          f"{prefix}),\n  LOG_LEVEL=warning, argon2 lowered for registration "
          "(PASSWORD_HASH_TIME_COST=1, PASSWORD_HASH_MEMORY_KIB=8)")
    print("  sender node: this process, the server's EventStream + RedisBroker; receivers are "
          "also\n  this process; PostgreSQL, Redis, server(s) and load generator share the "
          "2 cores")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")

    raw = script_server(SCRIPT, "raw-broadcast", "raw aiohttp")
    raw_rates: list[float] = []
    ones: list[float] = []
    twos: list[float] = []
    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as dir_a, temp_dir() as dir_b:
            extra = {"REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                     "SECRET_KEY": "bench-" + secrets.token_hex(24)}  # shared by nodes
            node_a = petspark_server(dsn, dir_a, "node A", **extra)
            node_b = petspark_server(dsn, dir_b, "node B", **extra)
            redis = create_redis(redis_url)
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
            try:
                await raw.start()
                await node_a.start()
                await node_b.start()  # after A: A has applied the migrations
                t0 = time.perf_counter()
                users = await register_users(node_a.base, RECEIVERS + 1)
                print(f"  registered {len(users)} users over HTTP in "
                      f"{time.perf_counter() - t0:.1f}s")
                resume_user, users = users[-1], users[:-1]
                user_ids = [u for u, _ in users]
                tokens = [t for _, t in users]
                broker = CountingBroker(RedisBroker(redis, channel=f"{prefix}bus",
                                                    node_id=new_node_id()))
                # The sender: a node of its own that only appends and publishes (to the
                # nodes the routes in Redis name for the recipients).
                sender = Node(db=pool, broker=broker, presence=MemoryPresence(),  # type: ignore[arg-type]
                              settings=Settings(), metrics=Metrics(),
                              routes=RedisRoutes(redis, prefix, ttl_s=60.0))
                stream = sender.stream

                for round_ in range(1, ROUNDS + 1):
                    print(f"\n[fan-out round {round_}/{ROUNDS}]")
                    raw_rates.append(await raw_phase(raw))
                    ones.append(await our_phase("petspark, one node", [node_a.ws_url], tokens,
                                                user_ids, stream))
                    twos.append(await our_phase("petspark, two nodes (500 + 500)",
                                                [node_a.ws_url, node_b.ws_url], tokens,
                                                user_ids, stream))
                size = max(broker.sizes)
                how = ("inline payloads" if size <= INLINE_PAYLOAD_LIMIT else
                       "over the inline limit: nodes read rows from PostgreSQL")
                print(f"  broker notice per event: {size:,} bytes ({how}; limit "
                      f"{INLINE_PAYLOAD_LIMIT:,})")

                print(f"\n[resume: {RESUME_EVENTS} missed events, hello → last event, "
                      f"{RESUME_TRIALS} trials]")
                times = await resume_phase(node_a.ws_url, resume_user[1], resume_user[0], stream)
                print("  " + ", ".join(f"{t * 1000:.0f} ms" for t in times))
            finally:
                await pool.close()
                await redis.aclose()
                raw.stop()
                node_a.stop()
                node_b.stop()
                await asyncio.to_thread(delete_prefix, redis_url, prefix)

    med = statistics.median(times)
    raw_rate, one, two = (statistics.median(x) for x in (raw_rates, ones, twos))
    print(f"\n[results] (fan-out: median of {ROUNDS} alternating rounds)")
    print(f"  fan-out, one node: {one:,.0f}/s vs raw {raw_rate:,.0f}/s = "
          f"{100 * one / raw_rate:.0f}% (target >= 50%: "
          f"{'met' if one / raw_rate >= 0.5 else 'MISSED'})")
    print(f"  fan-out, two nodes: {two:,.0f}/s = {100 * two / raw_rate:.0f}% of raw, "
          f"{two / one:.2f}x one node")
    print(f"  resume {RESUME_EVENTS} events: median {med * 1000:.0f} ms, worst "
          f"{max(times) * 1000:.0f} ms (target < 200 ms: {'met' if med < 0.2 else 'MISSED'})")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "raw-broadcast":
        run_raw_broadcast(int(sys.argv[2]))
        return
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn, bench_redis() as redis_url:
        asyncio.run(asyncio.wait_for(bench(admin_dsn, redis_url), timeout=300))


if __name__ == "__main__":
    main()
