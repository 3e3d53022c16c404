"""Admin benchmark (issue #13). Loopback only; creates and drops its own database.

    python3 dev.py bench admin [--users 100000] [--queries 300] [--sockets 10000]

Prints:
- ``admin.users`` search latency p50/p99 (the store query the handler runs, over asyncpg
  on loopback) with the trigram GIN index, then the same queries forced to a scan
  (``enable_bitmapscan``/``enable_indexscan`` off), and the ratio — for rare substrings
  (a piece of one user's email) and for short (2-character) queries, which have no
  trigram and walk the newest-first index until the page is full;
- the time one node spends on the event loop turning a flag change into ``flags.updated``
  for N local users (each user's values computed and encoded, offered to one socket
  each), with all-or-nothing flags only and with a partial rollout (which hashes).

PostgreSQL as in ``bench/lost_found.py`` (``BENCH_DATABASE_URL``, ``DATABASE_URL``,
127.0.0.1:5432, else embedded). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

import asyncpg

from bench._harness import bench_postgres, machine, percentile, throwaway_database
from protocol.flags import Flag, FlagsUpdated
from server.domain.admin.store import users_query
from server.domain.flags.service import values_for
from server.observability.metrics import Metrics
from server.realtime.broker import MemoryBroker
from server.realtime.frames import Frame
from server.realtime.node import Node
from server.realtime.presence import MemoryPresence
from server.resources.migrations import migrate
from server.resources.postgres import create_pool
from server.settings import Settings


async def seed(pool: asyncpg.Pool, users: int) -> list[str]:
    t = time.perf_counter()
    # A bulk load: build the search index once after the rows (as a restore would) instead
    # of entry by entry (fastupdate is off for the index: fine for signups, slow for 100k).
    index = await pool.fetchval("SELECT pg_get_indexdef('users_search_grams'::regclass)")
    await pool.execute("DROP INDEX users_search_grams")
    await pool.execute(
        """INSERT INTO users (email, display_name, password_hash, created_at)
           SELECT 'user' || md5(g::text) || '@example.com',
                  initcap(substr(md5((g * 7)::text), 1, 8)) || ' ' || g,
                  'x', now() - make_interval(secs => g)
           FROM generate_series(1, $1) AS g""", users)
    await pool.execute(index)
    await pool.execute("VACUUM ANALYZE users")
    emails = [r["email"] for r in await pool.fetch(
        "SELECT email FROM users ORDER BY random() LIMIT 1000")]
    print(f"seeded {users:,} users in {time.perf_counter() - t:.1f} s")
    return emails


async def time_search(conn: asyncpg.Connection, queries: list[str], scan: bool
                      ) -> tuple[list[float], int]:
    flag = "off" if scan else "on"
    await conn.execute(f"SET enable_bitmapscan = {flag}")
    await conn.execute(f"SET enable_indexscan = {flag}")
    times, found = [], 0
    for q in queries:
        sql, args = users_query(query=q, role=None, banned=None, after=None, limit=51)
        t = time.perf_counter()
        rows = await conn.fetch(sql, *args)
        times.append((time.perf_counter() - t) * 1000)
        found += len(rows)
    await conn.execute("RESET ALL")
    return times, found


def show(label: str, indexed: list[float], scanned: list[float]) -> None:
    p50i, p99i = percentile(indexed, 50), percentile(indexed, 99)
    p50s, p99s = percentile(scanned, 50), percentile(scanned, 99)
    print(f"  {label}: index p50 {p50i:.2f} ms p99 {p99i:.2f} ms | scan p50 {p50s:.2f} ms "
          f"p99 {p99s:.2f} ms | {p50s / p50i:.1f}x at p50")


class _Sock:
    """What the hub needs of a socket, minus the socket: counts the frames offered."""

    def __init__(self, user_id: str) -> None:
        self.id = self.session_id = user_id
        self.user_id = user_id
        self.frames = 0

    @property
    def delivered_seq(self) -> int:
        return 0

    def on_event(self, seq: int, frame: object) -> None: ...

    def catch_up(self, last_seq: int) -> None: ...

    def offer(self, frame: Frame) -> bool:
        self.frames += 1
        return True

    def close_soon(self, code: int, reason: str) -> None: ...


def time_fanout(sockets: int, pool: asyncpg.Pool) -> None:
    node = Node(db=pool, broker=MemoryBroker(), presence=MemoryPresence(),
                settings=Settings(), metrics=Metrics())
    socks = [_Sock(f"00000000-0000-4000-8000-{i:012d}") for i in range(sockets)]
    for s in socks:
        node.hub.add(s)
    now = datetime.now(UTC)
    plain = {f"flag_{i}": Flag(key=f"flag_{i}", enabled=i % 2 == 0, rollout_percent=100,
                               updated_at=now) for i in range(10)}
    partial = {**plain, "rollout": Flag(key="rollout", enabled=True, rollout_percent=30,
                                        updated_at=now)}
    for label, flags in (("10 all-or-nothing flags", plain),
                         ("+ one 30 % rollout", partial)):
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            reached = node.send_to_local_users(
                lambda uid, f=flags: FlagsUpdated(flags=values_for(f, uid)))  # type: ignore[misc]
            runs.append((time.perf_counter() - t) * 1000)
        print(f"  {label}: {reached:,} sockets in {min(runs):.1f} ms (best of 5) on the loop, "
              f"{min(runs) * 1000 / reached:.2f} µs per socket")


async def main(admin_dsn: str, args: argparse.Namespace) -> None:
    async with throwaway_database(admin_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            print(f"PostgreSQL {await conn.fetchval('SHOW server_version')}")
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            emails = await seed(pool, args.users)
            rng = random.Random(7)
            rare = []
            for email in rng.choices(emails, k=args.queries):
                start = rng.randrange(4, 4 + 32 - 6)  # inside the md5 part
                rare.append(email[start:start + 6].upper())
            short = [rng.choice("abcdef") + rng.choice("0123456789")
                     for _ in range(args.queries)]
            print(f"admin.users search over {args.users:,} users ({args.queries} queries "
                  "each, page of 50):")
            # No statement cache: a cached plan would ignore the planner settings changed
            # between the two runs; each query is planned for its own value.
            conn = await asyncpg.connect(dsn, statement_cache_size=0)
            try:
                for label, queries in (
                        ("6-char substring of one email", rare),
                        ("2-char query (no trigram; newest-first index walk)", short)):
                    await time_search(conn, queries[:20], scan=False)  # warm up
                    indexed, n_i = await time_search(conn, queries, scan=False)
                    scanned, n_s = await time_search(conn, queries, scan=True)
                    if n_i != n_s:
                        print(f"  !! index found {n_i} rows, scan {n_s}")
                    show(label, indexed, scanned)
            finally:
                await conn.close()
            print(f"flags.updated to {args.sockets:,} local users (one socket each):")
            time_fanout(args.sockets, pool)
        finally:
            await pool.close()


def run() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sockets", type=int, default=10_000)
    args = parser.parse_args()
    print(f"admin bench on {machine()}")
    with bench_postgres() as admin_dsn:
        asyncio.run(main(admin_dsn, args))


if __name__ == "__main__":
    run()
