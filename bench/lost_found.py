"""Lost & found geo benchmark (issue #7). Loopback only; creates and drops its own database.

    python3 dev.py bench lost_found [--watches 100000] [--alerts 10000] [--queries 1000]

Seeds 100,000 watch areas and 10,000 open alerts over a Germany-sized box
(47..55°N, 6..15°E, ~620,000 km²), plus a cluster of ~2,000 watchers around one
point. Prints:
- ``lost.nearby`` latency p50/p99 (the store query the handler runs, over asyncpg
  on loopback) with the GiST index, then the same query forced to a sequential
  scan (``enable_indexscan``/``enable_bitmapscan`` off) and the ratio;
- the same for the watcher match of one alert (the fan-out's query);
- time from ``lost.report`` (the service call, committed) to the last of the
  ~2,000 matching watchers' ``lost.alert`` events committed by the fan-out runner,
  in 500-user batches.

PostgreSQL: ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` (an admin DSN whose server
may create databases), else 127.0.0.1:5432 as postgres, else an embedded server in a
temporary folder (``bench/_harness.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg

from bench._harness import bench_postgres, throwaway_database
from protocol.lost import LostReport
from protocol.types import Location
from server.deps import Deps
from server.domain.lost_found import store
from server.domain.lost_found.service import LostFoundService
from server.observability.metrics import Metrics
from server.realtime.broker import MemoryBroker
from server.realtime.node import Node
from server.realtime.presence import MemoryPresence
from server.resources.migrations import migrate
from server.resources.postgres import create_pool
from server.resources.ratelimit import MemoryRateLimiter
from server.resources.storage import LocalStorage
from server.settings import Settings
from server.state import RUNTIME

LAT0, LAT1, LNG0, LNG1 = 47.0, 55.0, 6.0, 15.0
CLUSTER = (50.11, 8.68)  # Frankfurt
CLUSTER_SIZE = 2000


async def seed(pool: asyncpg.Pool, watches: int, alerts: int) -> tuple[str, list[str]]:
    """Returns (reporter id, the cluster watchers' ids)."""
    t = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(
            """INSERT INTO users (email, display_name, password_hash)
               SELECT 'u' || g || '@bench.invalid', 'U', 'x'
               FROM generate_series(1, $1) AS g""",
            watches + CLUSTER_SIZE + 1,
        )
        rows = await conn.fetch("SELECT id::text AS id FROM users ORDER BY email")
        users = [r["id"] for r in rows]
        reporter, cluster, spread = users[0], users[1:CLUSTER_SIZE + 1], users[CLUSTER_SIZE + 1:]
        # Spread watchers: uniform over the box, radius 100 m .. 5 km.
        await conn.execute(
            """INSERT INTO lost_watches (user_id, lat, lng, radius_m)
               SELECT u, $2::float8 + random() * ($3::float8 - $2),
                      $4::float8 + random() * ($5::float8 - $4), 100 + floor(random() * 4900)
               FROM unnest($1::uuid[]) AS u""",
            spread, LAT0, LAT1, LNG0, LNG1,
        )
        # The cluster: centres within ~1.5 km of CLUSTER, radius 500 m .. 2 km, so every
        # one of them intersects a 2 km alert at CLUSTER.
        await conn.execute(
            """INSERT INTO lost_watches (user_id, lat, lng, radius_m)
               SELECT u, $2::float8 + (random() - 0.5) * 0.02, $3::float8 + (random() - 0.5) * 0.03,
                      500 + floor(random() * 1500)
               FROM unnest($1::uuid[]) AS u""",
            cluster, CLUSTER[0], CLUSTER[1],
        )
        # Open alerts: uniform over the box, radius 100 m .. 10 km, owners from the spread.
        await conn.execute(
            """INSERT INTO lost_alerts (owner_id, description, lat, lng, radius_m)
               SELECT u, 'bench alert', $2::float8 + random() * ($3::float8 - $2),
                      $4::float8 + random() * ($5::float8 - $4),
                      100 + floor(random() * 9900)
               FROM unnest($1::uuid[]) AS u""",
            spread[:alerts], LAT0, LAT1, LNG0, LNG1,
        )
    await pool.execute("VACUUM ANALYZE lost_watches")
    await pool.execute("VACUUM ANALYZE lost_alerts")
    print(f"seeded {watches + CLUSTER_SIZE:,} watch areas ({CLUSTER_SIZE:,} in one cluster) and "
          f"{alerts:,} open alerts in {time.perf_counter() - t:.1f} s")
    return reporter, cluster


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _planner(conn: asyncpg.Connection, seq_scan: bool) -> None:
    await conn.execute(f"SET enable_indexscan = {'off' if seq_scan else 'on'}")
    await conn.execute(f"SET enable_bitmapscan = {'off' if seq_scan else 'on'}")


async def time_queries(conn: asyncpg.Connection, points: list[tuple[float, float, int]],
                       seq_scan: bool) -> tuple[list[float], int]:
    """Round-trip times (ms) of the store call the lost.nearby handler makes."""
    await _planner(conn, seq_scan)
    times, found = [], 0
    for lat, lng, radius in points:
        t = time.perf_counter()
        rows = await store.select_open_alerts_near(conn, lat=lat, lng=lng, radius_m=radius,
                                                   limit=50)
        times.append((time.perf_counter() - t) * 1000)
        found += len(rows)
    await conn.execute("RESET ALL")
    return times, found


async def server_times(conn: asyncpg.Connection, sql: str,
                       points: list[tuple[float, float, int]], seq_scan: bool,
                       limit: int = 50) -> list[float]:
    """Server-side execution times (ms), EXPLAIN ANALYZE without per-node timing."""
    await _planner(conn, seq_scan)
    times = []
    for lat, lng, radius in points:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql,
                                   lat, lng, radius, limit)
        times.append(float(json.loads(plan)[0]["Execution Time"]))
    await conn.execute("RESET ALL")
    return times


async def bench_nearby(dsn: str, queries: int) -> None:
    rng = random.Random(7)
    points = [(rng.uniform(LAT0, LAT1), rng.uniform(LNG0, LNG1), rng.randint(1, 5000))
              for _ in range(queries)]
    sql = _nearby_sql()
    # No geo prefilter at all: the haversine test on every open alert.
    naive = sql.replace(store._OVERLAPS.format(col="a.pub_bbox"), "true")
    # No statement cache: a cached plan would ignore the enable_* settings.
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        plan = await conn.fetch("EXPLAIN " + sql, 50.0, 8.0, 1000, 50)
        print("lost.nearby plan:", " / ".join(
            r[0].strip().split("  (")[0] for r in plan if "Scan" in r[0]))
        await time_queries(conn, points[:50], seq_scan=False)  # warm up
        idx, found = await time_queries(conn, points, seq_scan=False)
        few = points[: max(50, queries // 5)]
        seq, _ = await time_queries(conn, few, seq_scan=True)
        s_idx = await server_times(conn, sql, few, seq_scan=False)
        s_seq = await server_times(conn, sql, few, seq_scan=True)
        s_naive = await server_times(conn, naive, few, seq_scan=True)
    finally:
        await conn.close()
    print(f"lost.nearby round trip, GiST index: p50 {pct(idx, 50):6.2f} ms  "
          f"p99 {pct(idx, 99):6.2f} ms  ({queries} queries, "
          f"{found / queries:.1f} alerts each on average)")
    print(f"lost.nearby round trip, seq scan:   p50 {pct(seq, 50):6.2f} ms  "
          f"p99 {pct(seq, 99):6.2f} ms  ({len(seq)} queries)")
    print(f"lost.nearby in the server, GiST index:          p50 {pct(s_idx, 50):6.3f} ms  "
          f"p99 {pct(s_idx, 99):6.3f} ms")
    print(f"lost.nearby in the server, seq scan (box test): p50 {pct(s_seq, 50):6.3f} ms  "
          f"p99 {pct(s_seq, 99):6.3f} ms  -> index {pct(s_seq, 50) / pct(s_idx, 50):.1f}x")
    print(f"lost.nearby in the server, seq scan haversine:  p50 {pct(s_naive, 50):6.3f} ms  "
          f"p99 {pct(s_naive, 99):6.3f} ms  -> index {pct(s_naive, 50) / pct(s_idx, 50):.1f}x")


def _nearby_sql() -> str:
    # The statement select_open_alerts_near runs, for EXPLAIN.
    import inspect
    src = inspect.getsource(store.select_open_alerts_near)
    body = src.split('f"""', 1)[1].split('"""', 1)[0]
    return body.replace("{ALERT_COLUMNS}", store.ALERT_COLUMNS).replace(
        "{_OVERLAPS.format(col=\"a.pub_bbox\")}", store._OVERLAPS.format(col="a.pub_bbox"))


async def bench_watcher_match(pool: asyncpg.Pool, reporter: str) -> None:
    """The fan-out's query for the first batch of 500, for 100 random alert circles."""
    rng = random.Random(11)
    circles = [(rng.uniform(LAT0, LAT1), rng.uniform(LNG0, LNG1), rng.randint(100, 50000))
               for _ in range(100)]
    sql = f"""SELECT DISTINCT w.user_id FROM lost_watches w
              WHERE {store._OVERLAPS.format(col="w.bbox")}
                AND lf_distance_m($1, $2, w.lat, w.lng) <= w.radius_m + $3
                AND w.user_id <> '{reporter}' ORDER BY w.user_id LIMIT $4"""
    results = {}
    async with pool.acquire() as conn:
        for seq_scan in (False, True):
            results[seq_scan] = await server_times(conn, sql, circles, seq_scan, limit=500)
    idx, seq = results[False], results[True]
    print(f"watcher match (batch of 500) in the server, GiST index: p50 {pct(idx, 50):6.2f} ms"
          f"  p99 {pct(idx, 99):6.2f} ms")
    print(f"watcher match (batch of 500) in the server, seq scan:   p50 {pct(seq, 50):6.2f} ms"
          f"  p99 {pct(seq, 99):6.2f} ms  -> index {pct(seq, 50) / pct(idx, 50):.1f}x")


async def bench_fanout(pool: asyncpg.Pool, reporter: str, cluster: list[str],
                       repeats: int = 3) -> None:
    settings = Settings()
    node = Node(db=pool, broker=MemoryBroker(), presence=MemoryPresence(), settings=settings,
                metrics=Metrics())
    with tempfile.TemporaryDirectory() as scratch:
        storage = LocalStorage(Path(scratch), b"k" * 32)
    lost = LostFoundService(Deps(settings=settings, db=pool, node=node, storage=storage,
                                 limiter=MemoryRateLimiter(), metrics=Metrics()))
    runner = lost.runner  # not started: this bench drives it
    cmd = LostReport(id="b", description="Black cat, white paws",
                     location=Location(lat=CLUSTER[0], lng=CLUSTER[1]), radius_m=2000)
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = await lost.report_lost(reporter, cmd)
        acked = time.perf_counter() - t0
        batches = await runner.drain()
        done = time.perf_counter() - t0
        sent = await pool.fetchval(
            "SELECT count(*) FROM lost_alert_recipients WHERE alert_id = $1", result.alert.id)
        in_cluster = await pool.fetchval(
            "SELECT count(*) FROM lost_alert_recipients WHERE alert_id = $1 "
            "AND user_id = ANY($2::uuid[])", result.alert.id, cluster)
        print(f"lost.report acknowledged in {acked * 1000:.1f} ms; lost.alert (+ notification) "
              f"appended for the last of {sent:,} watchers ({in_cluster:,} of the cluster) "
              f"{done * 1000:.0f} ms after the report ({batches} batches of <= 500)")


async def bench_sockets(dsn: str, reporter: str, cluster: list[str], data_dir: Path) -> None:
    """The whole path: the real app on a loopback port, one socket per cluster watcher;
    time from sending lost.report to its ack, and to the last watcher's lost.alert frame."""
    import aiohttp
    from aiohttp import web

    from server.app import create_app
    from server.settings import Settings

    settings = Settings(database_url=dsn, redis_url=None, data_dir=str(data_dir),
                        secret_key="bench-secret-" + "x" * 40, db_pool_max=10,
                        shutdown_spread_s=0.0)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/ws"
    pool = app[RUNTIME].deps.db
    rows = await pool.fetch(
        """INSERT INTO sessions (user_id, kind) SELECT u, 'token' FROM unnest($1::uuid[]) AS u
           RETURNING id::text AS sid, user_id::text AS uid""", [reporter, *cluster])
    tokens = {r["uid"]: app[RUNTIME].auth.tokens.issue(user_id=r["uid"], role="user",
                                                session_id=r["sid"])[0] for r in rows}
    received: dict[str, float] = {}
    all_in = asyncio.Event()
    # limit=0: every WebSocket holds its connection (the default pool stops at 100).
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=60))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []

    async def open_socket(user_id: str) -> aiohttp.ClientWebSocketResponse:
        ws = await http.ws_connect(url, protocols=("petspark.v1.json",),
                                   headers={"Authorization": f"Bearer {tokens[user_id]}"})
        await ws.send_str('{"type": "hello"}')
        welcome = await ws.receive(timeout=30)
        assert '"welcome"' in welcome.data, welcome
        return ws

    async def read(user_id: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            data = msg.data
            if '"lost.alert"' in data and user_id not in received:
                received[user_id] = time.perf_counter()
                if len(received) == len(cluster):
                    all_in.set()
            elif '"ping"' in data:
                await ws.send_str('{"type": "pong"}')

    try:
        t = time.perf_counter()
        gate = asyncio.Semaphore(50)

        async def connect(user_id: str) -> None:
            async with gate:
                ws = await open_socket(user_id)
            sockets.append(ws)
            readers.append(asyncio.create_task(read(user_id, ws)))

        await asyncio.gather(*(connect(u) for u in cluster))
        print(f"{len(cluster):,} watcher sockets open in {time.perf_counter() - t:.1f} s")
        rep = await open_socket(reporter)
        report = ('{"type": "lost.report", "id": "r1", "description": "Black cat",'
                  f' "location": {{"lat": {CLUSTER[0]}, "lng": {CLUSTER[1]}}},'
                  ' "radius_m": 2000}')
        t0 = time.perf_counter()
        await rep.send_str(report)
        while True:
            reply = await rep.receive(timeout=30)
            if '"ok"' in reply.data or '"error"' in reply.data:
                break
        acked = time.perf_counter() - t0
        assert '"ok"' in reply.data, reply.data
        try:
            await asyncio.wait_for(all_in.wait(), 60)
        except TimeoutError:
            print(f"only {len(received):,} of {len(cluster):,} sockets got lost.alert in 60 s")
        times = sorted(v - t0 for v in received.values())
        if times:
            print(f"over sockets: lost.report ok in {acked * 1000:.1f} ms; lost.alert received "
                  f"by {len(times):,} watchers: first {times[0] * 1000:.0f} ms, "
                  f"p50 {pct(times, 50) * 1000:.0f} ms, last {times[-1] * 1000:.0f} ms "
                  "(server and clients share one process and event loop)")
        await rep.close()
    finally:
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
        await http.close()
        await runner.cleanup()


async def main(admin: str, args: argparse.Namespace) -> None:
    async with throwaway_database(admin) as dsn:
        conn = await asyncpg.connect(dsn)
        version = await conn.fetchval("SHOW server_version")
        await migrate(conn)
        await conn.close()
        print(f"PostgreSQL {version}")
        pool = await create_pool(dsn, min_size=2, max_size=4)  # the server's codecs (jsonb)
        try:
            reporter, cluster = await seed(pool, args.watches, args.alerts)
            await bench_nearby(dsn, args.queries)
            await bench_watcher_match(pool, reporter)
            await bench_fanout(pool, reporter, cluster)
        finally:
            await pool.close()
        if not args.no_sockets:
            data_dir = Path(tempfile.mkdtemp(prefix="petspark-bench-data-"))
            try:
                await bench_sockets(dsn, reporter, cluster, data_dir)
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-sockets", action="store_true",
                        help="skip the end-to-end run over 2,000 WebSockets")
    args = parser.parse_args()
    with bench_postgres() as admin:
        asyncio.run(main(admin, args))


if __name__ == "__main__":
    run()
