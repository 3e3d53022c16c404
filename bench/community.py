"""Community benchmark (issue #12). Loopback only; creates and drops its own database.

    python3 dev.py bench community [--posts 100000] [--users 10000] [--readers 10]
                                   [--queries 300] [--likers 200] [--rounds 3]

Seeds ``--users`` users and ``--posts`` posts (60% with a place, uniform over a
Germany-sized box, 47..55°N 6..15°E; spread over 30 days; counters on half of them;
each bench reader blocks 5 authors), starts the server (its own interpreter,
``-m server``) and prints:

- ``posts.feed`` round trips over real WebSockets, p50/p99, for ``recent`` (first page and
  the page after a cursor) and ``nearby`` (25 km around random points in the box), beside
  ``pets.mine`` (one indexed query) on the same sockets as the baseline;
- the same page queries inside PostgreSQL (``EXPLAIN ANALYZE``): ``nearby`` by squares
  against the other plan, the time index with a distance filter, and the ratio;
- ``posts.like``: ``--likers`` users (one socket each) like ONE post at the same moment;
  likes/s from the first frame sent to the last reply, the final ``like_count`` beside
  the number of likers, and, as the baseline in the same run, the same users each liking
  a different post (no shared rows).

Nothing asserts on time. PostgreSQL as in every bench (``bench/_harness.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from bench._harness import (
    bench_postgres,
    machine,
    percentile,
    petspark_server,
    register_users,
    temp_dir,
    throwaway_database,
)
from server.domain.community import store
from server.resources.migrations import migrate

LAT0, LAT1, LNG0, LNG1 = 47.0, 55.0, 6.0, 15.0


async def seed(dsn: str, users: int, posts: int) -> None:
    t = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(
            """INSERT INTO users (email, display_name, password_hash)
               SELECT 'seed' || g || '@bench.invalid', 'Seed ' || g, 'x'
               FROM generate_series(1, $1) g""", users)
        await conn.execute("""CREATE TEMP TABLE ids AS
                              SELECT row_number() OVER (ORDER BY email) AS n, id FROM users""")
        await conn.execute(
            """INSERT INTO posts (author_id, body, lat, lng, created_at)
               SELECT ids.id, 'Bench post number ' || g || ' about a good dog',
                      CASE WHEN g % 5 < 3 THEN $3::float8 + random() * ($4::float8 - $3) END,
                      CASE WHEN g % 5 < 3 THEN $5::float8 + random() * ($6::float8 - $5) END,
                      now() - random() * interval '30 days'
               FROM generate_series(1, $1) g JOIN ids ON ids.n = 1 + (g * 7919) % $2""",
            posts, users, LAT0, LAT1, LNG0, LNG1)
        await conn.execute(
            """INSERT INTO post_counters (post_id, shard, likes, comments)
               SELECT id, (random() * 7)::int, (random() * 40)::int, (random() * 5)::int
               FROM posts WHERE random() < 0.5""")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"seeded {users:,} users and {posts:,} posts in {time.perf_counter() - t:.1f} s",
          flush=True)


class Socket:
    """One lean protocol client: JSON strings out, replies matched by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.n = 0
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, token: str) -> Socket:
        ws = await session.ws_connect(url, protocols=("petspark.v1.json",),
                                      headers={"Authorization": f"Bearer {token}"})
        await ws.send_str('{"type": "hello"}')
        welcome = await ws.receive(timeout=30)
        assert '"welcome"' in welcome.data, welcome.data
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.data
            if '"type":"ok"' in data or '"type":"error"' in data:
                reply = json.loads(data)
                future = self.waiting.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
            elif '"type":"ping"' in data:
                await self.ws.send_str('{"type": "pong"}')

    async def send(self, command: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send the command; the future is its reply."""
        self.n += 1
        command["id"] = f"b{self.n}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[command["id"]] = future
        await self.ws.send_str(json.dumps(command))
        return future

    async def call(self, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        reply = await asyncio.wait_for(await self.send(command), timeout)
        if reply["type"] != "ok":
            raise RuntimeError(f"{command['type']}: {reply}")
        result: dict[str, Any] = reply["result"]
        return result

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def line(name: str, values: list[float], base: list[float] | None = None) -> str:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    text = f"  {name:<36} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  (n={len(values)})"
    if base:
        text += f"  {p50 / percentile(base, 50):5.1f}x pets.mine"
    return text


async def bench_feed(sockets: list[Socket], queries: int) -> None:
    rng = random.Random(7)
    timings: dict[str, list[float]] = {k: [] for k in ("pets.mine", "recent", "recent+cursor",
                                                       "nearby", "nearby+cursor")}
    found = {"recent": 0, "nearby": 0}

    async def one(sock: Socket) -> None:
        for _ in range(queries // len(sockets)):
            t = time.perf_counter()
            await sock.call({"type": "pets.mine"})
            timings["pets.mine"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            page = await sock.call({"type": "posts.feed", "scope": "recent"})
            timings["recent"].append((time.perf_counter() - t) * 1000)
            found["recent"] += len(page["posts"])
            t = time.perf_counter()
            await sock.call({"type": "posts.feed", "scope": "recent",
                             "cursor": page["next_cursor"]})
            timings["recent+cursor"].append((time.perf_counter() - t) * 1000)
            here = {"lat": rng.uniform(LAT0 + 0.3, LAT1 - 0.3),
                    "lng": rng.uniform(LNG0 + 0.3, LNG1 - 0.3)}
            t = time.perf_counter()
            page = await sock.call({"type": "posts.feed", "scope": "nearby", "location": here})
            timings["nearby"].append((time.perf_counter() - t) * 1000)
            found["nearby"] += len(page["posts"])
            if page.get("next_cursor"):
                t = time.perf_counter()
                await sock.call({"type": "posts.feed", "scope": "nearby", "location": here,
                                 "cursor": page["next_cursor"]})
                timings["nearby+cursor"].append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(one(s) for s in sockets[:2]))  # warm up the plans and caches
    for values in timings.values():
        values.clear()
    found.update(recent=0, nearby=0)
    await asyncio.gather(*(one(s) for s in sockets))
    n = len(timings["recent"])
    print(f"posts.feed over {len(sockets)} sockets, one command at a time each (20 posts a "
          f"page; nearby: 25 km, {found['nearby'] / max(n, 1):.1f} posts on a first page):",
          flush=True)
    base = timings["pets.mine"]
    print(line("pets.mine (baseline: one query)", base))
    for key in ("recent", "recent+cursor", "nearby", "nearby+cursor"):
        print(line(f"posts.feed {key}", timings[key], base))


async def bench_feed_sql(dsn: str, viewer: str, queries: int) -> None:
    """The nearby page inside PostgreSQL: by squares, against the time-index plan."""
    rng = random.Random(11)
    points = [(rng.uniform(LAT0 + 0.3, LAT1 - 0.3), rng.uniform(LNG0 + 0.3, LNG1 - 0.3))
              for _ in range(queries)]
    conn = await asyncpg.connect(dsn, statement_cache_size=0)

    async def server_ms(sql: str, args: list[Any]) -> float:
        text = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, *args)
        return float(json.loads(text)[0]["Execution Time"])

    try:
        by_cells, by_time, recent = [], [], []
        for lat, lng in points:
            cells = store.cells_of_cap(lat, lng, 25_000)
            args = store.page_args(viewer, 21, [lat, lng, 25_000.0, cells], None)
            by_cells.append(await server_ms(
                store._with_details(store.nearby_page_sql(False, by_cells=True)), args))
            args = store.page_args(viewer, 21, [lat, lng, 25_000.0, []], None)
            by_time.append(await server_ms(
                store._with_details(store.nearby_page_sql(False, by_cells=False)), args))
            recent.append(await server_ms(store._with_details(store.recent_page_sql(False)),
                                          store.page_args(viewer, 21, [], None)))
    finally:
        await conn.close()
    print("the same pages inside PostgreSQL (EXPLAIN ANALYZE, no timing per node):")
    print(line("recent (posts_recent)", recent))
    print(line("nearby by squares (posts_cell_recent)", by_cells))
    print(line("nearby by the time index + distance", by_time)
          + f"  -> squares {percentile(by_time, 50) / percentile(by_cells, 50):.1f}x faster")


async def like_round(sockets: list[Socket], post_ids: list[str]) -> tuple[float, float]:
    """Every socket likes its post (all the same one, or one each) at once; (likes/s,
    p99 ms of a reply)."""
    t0 = time.perf_counter()
    futures = await asyncio.gather(*(s.send({"type": "posts.like", "post_id": p, "like": True})
                                     for s, p in zip(sockets, post_ids, strict=True)))
    done: list[float] = []

    async def wait(f: asyncio.Future[dict[str, Any]]) -> None:
        reply = await asyncio.wait_for(f, 60)
        if reply["type"] != "ok":
            raise RuntimeError(reply)
        done.append(time.perf_counter() - t0)

    await asyncio.gather(*(wait(f) for f in futures))
    return len(futures) / max(done), percentile(done, 99) * 1000


async def bench_likes(dsn: str, author: Socket, likers: list[Socket], rounds: int) -> None:
    hot_rates, spread_rates, hot_p99, spread_p99 = [], [], [], []
    final: list[tuple[int, int]] = []
    for r in range(rounds):
        hot = (await author.call({"type": "posts.create", "body": f"hot {r}"}))["post"]["id"]
        rate, p99 = await like_round(likers, [hot] * len(likers))
        hot_rates.append(rate)
        hot_p99.append(p99)
        got = await author.call({"type": "posts.get", "post_id": hot})
        final.append((got["post"]["like_count"], len(likers)))
        # One post each, by as many different (seeded) authors: no row in common.
        conn = await asyncpg.connect(dsn)
        try:
            spread = [row["id"] for row in await conn.fetch(
                """INSERT INTO posts (author_id, body)
                   SELECT id, 'cold post' FROM users WHERE email LIKE 'seed%'
                   ORDER BY random() LIMIT $1 RETURNING id::text AS id""", len(likers))]
        finally:
            await conn.close()
        rate, p99 = await like_round(likers, spread)
        spread_rates.append(rate)
        spread_p99.append(p99)
    hot_rate, spread_rate = statistics.median(hot_rates), statistics.median(spread_rates)
    print(f"posts.like, {len(likers)} users at the same moment (median of {rounds} rounds; "
          "each first like also notifies the author):")
    print(f"  one hot post:            {hot_rate:7.0f} likes/s  reply p99 "
          f"{statistics.median(hot_p99):6.0f} ms  final like_count / likers: "
          + ", ".join(f"{c}/{n}" for c, n in final))
    print(f"  one post each (baseline): {spread_rate:7.0f} likes/s  reply p99 "
          f"{statistics.median(spread_p99):6.0f} ms  -> the hot post runs at "
          f"{hot_rate / spread_rate:.0%} of it")


async def main(admin: str, args: argparse.Namespace) -> None:
    print(machine(), flush=True)
    async with throwaway_database(admin) as dsn:
        await seed(dsn, args.users, args.posts)
        with temp_dir() as data_dir:
            server = petspark_server(dsn, data_dir, name="petspark",
                                     POSTS_CREATE_PER_HOUR="100000")
            try:
                await server.start()
                users = await register_users(server.base, args.likers + 1)
                conn = await asyncpg.connect(dsn)
                try:  # each reader blocks five authors, as people do
                    await conn.execute(
                        """INSERT INTO user_blocks (blocker_id, blocked_id)
                           SELECT r::uuid, u.id FROM unnest($1::text[]) r
                           CROSS JOIN LATERAL (SELECT id FROM users
                               WHERE email LIKE 'seed%' ORDER BY random() LIMIT 5) u""",
                        [u for u, _ in users[: args.readers]])
                    print(f"PostgreSQL {await conn.fetchval('SHOW server_version')}",
                          flush=True)
                finally:
                    await conn.close()
                http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                sockets: list[Socket] = []
                try:
                    gate = asyncio.Semaphore(50)

                    async def connect(token: str) -> Socket:
                        async with gate:
                            return await Socket.open(http, server.ws_url, token)

                    sockets = list(await asyncio.gather(*(connect(t) for _, t in users)))
                    await bench_feed(sockets[: args.readers], args.queries)
                    await bench_feed_sql(dsn, users[0][0], min(args.queries, 200))
                    await bench_likes(dsn, sockets[-1], sockets[:-1], args.rounds)
                finally:
                    for s in sockets:
                        await s.close()
                    await http.close()
            finally:
                server.stop()
    print(f"done at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300,
                        help="feed samples of each kind, over all readers")
    parser.add_argument("--likers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if (args.posts > 1_000_000 or args.users > 100_000 or args.likers > 1000
            or args.queries > 5000 or args.rounds > 10 or args.readers > args.likers):
        parser.error("bounded: ≤ 1,000,000 posts, 100,000 users, 1,000 likers, 5,000 "
                     "queries, 10 rounds; readers ≤ likers")
    with bench_postgres() as admin:
        asyncio.run(main(admin, args))


if __name__ == "__main__":
    run()
