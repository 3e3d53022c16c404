"""Issue #19 benchmark: one ``lost.report`` to 1,000 watchers, beside raw aiohttp broadcast.

    python3 dev.py bench lost_alert [--watchers 1000] [--bursts 20]

- petspark: ``python -m server`` (uvloop, in-process broker; a subprocess on loopback).
  1,000 users each hold one watcher socket and one watch circle around the same point;
  a reporter socket sends ``lost.report`` there BURSTS times, one after another, each
  once every watcher has the previous alert. Time from writing the report on the
  reporter's socket to each watcher's ``lost.alert`` frame (one clock: this process).
  With the watchers ≤ ``LOST_INLINE_FANOUT_MAX`` (2,000) the alert is sent in the
  report's own transaction (plus each watcher's notification), then published.
- Raw baseline: bench/fanout.py's raw aiohttp server (``send_str`` loop, no database,
  no broker) with the same 1,000 receivers and the same lean client; the trigger socket
  sends one alert-sized frame per burst.

Per side: deliveries/s (all bursts' deliveries over the sum of their spans, report →
last watcher), and p50/p99 over the bursts of the time to the *last* watcher, plus p50
of every delivery. Then the ratio of deliveries/s. Bounded: fixed sockets and bursts,
every wait has a deadline; users, sessions and watches are written straight into a
throwaway database (registration would measure password hashing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    bounded_gather,
    machine,
    percentile,
    petspark_server,
    script_server,
    temp_dir,
    throwaway_database,
)
from bench.fanout import SCRIPT as FANOUT_SCRIPT
from bench.fanout import open_petspark

SECRET = "bench-lost-alert-" + "x" * 40
POINT = (50.11, 8.68)
OPEN_CONCURRENCY = 100
BURST_TIMEOUT_S = 30.0
MARK = '"type":"lost.alert"'


class Watchers:
    """Lean watcher sockets: the first ``lost.alert`` frame of each burst is timed."""

    def __init__(self, sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
        self.sockets = sockets
        self.arrivals: list[float] = []
        self.expected = 0
        self.done = asyncio.Event()
        self._tasks = [asyncio.create_task(self._read(ws)) for ws in sockets]

    def expect(self, count: int) -> None:
        self.arrivals = []
        self.expected = count
        self.done.clear()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data: str = msg.data
            if MARK in data[:40]:
                self.arrivals.append(time.perf_counter())
                if len(self.arrivals) >= self.expected:
                    self.done.set()
            elif data.startswith('{"type":"ping"'):
                await ws.send_str('{"type":"pong"}')

    async def close(self) -> None:
        await bounded_gather(200, [ws.close for ws in self.sockets])
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Side:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lasts: list[float] = []
        self.all: list[float] = []
        self.delivered = 0
        self.span = 0.0

    def burst(self, t0: float, arrivals: list[float], expected: int) -> None:
        times = [a - t0 for a in arrivals]
        self.delivered += len(times)
        if len(times) < expected:
            print(f"  {self.name}: only {len(times)}/{expected} in {BURST_TIMEOUT_S:.0f} s")
        if times:
            self.lasts.append(max(times))
            self.span += max(times)
            self.all.extend(times)

    @property
    def rate(self) -> float:
        return self.delivered / self.span if self.span else 0.0

    def line(self) -> str:
        return (f"  {self.name}: {self.delivered:,} deliveries in {len(self.lasts)} bursts -> "
                f"{self.rate:,.0f} deliveries/s; last watcher p50 "
                f"{percentile(self.lasts, 50) * 1000:.1f} ms, p99 "
                f"{percentile(self.lasts, 99) * 1000:.1f} ms, max "
                f"{max(self.lasts, default=0) * 1000:.1f} ms; every delivery p50 "
                f"{percentile(self.all, 50) * 1000:.1f} ms")


def alert_frame() -> str:
    """A frame of the size and shape of a ``lost.alert`` event, for the raw server."""
    return ('{"type":"lost.alert","seq":1,"alert":{"id":"' + str(uuid.uuid4())
            + '","owner_id":"' + str(uuid.uuid4()) + '","pet_id":null,"description":'
            '"Black cat, white paws","location":{"lat":50.11,"lng":8.68},"radius_m":2000,'
            '"status":"open","photo_ids":[],"created_at":"2026-12-01T00:00:00.000000Z",'
            '"resolved_at":null}}')


async def raw_side(raw: ServerProcess, watchers: int, bursts: int) -> Side:
    side = Side("raw aiohttp broadcast")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        socks = await bounded_gather(OPEN_CONCURRENCY, [
            lambda: session.ws_connect(raw.ws_url) for _ in range(watchers)])
        rec = Watchers(socks)
        trigger = await session.ws_connect(raw.base + "/trigger")
        await asyncio.sleep(0.5)
        for _ in range(bursts):
            rec.expect(watchers)
            t0 = time.perf_counter()
            await trigger.send_str(alert_frame())
            try:
                await asyncio.wait_for(rec.done.wait(), BURST_TIMEOUT_S)
            except TimeoutError:
                pass
            side.burst(t0, rec.arrivals, watchers)
        await trigger.close()
        await rec.close()
    return side


async def seed(dsn: str, watchers: int) -> tuple[list[tuple[str, str]], tuple[str, str]]:
    """(user id, session id) of each watcher, and of the reporter."""
    import asyncpg

    users = [str(uuid.uuid4()) for _ in range(watchers + 1)]
    sessions = [str(uuid.uuid4()) for _ in users]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO users (id, email, display_name, password_hash)
               SELECT u, 'b-' || u || '@example.com', 'W', 'x' FROM unnest($1::uuid[]) AS u""",
            users)
        await conn.execute(
            "INSERT INTO sessions (id, user_id, kind) "
            "SELECT s, u, 'token' FROM unnest($1::uuid[], $2::uuid[]) AS t (s, u)",
            sessions, users)
        await conn.execute(
            "INSERT INTO lost_watches (user_id, lat, lng, radius_m) "
            "SELECT u, $2, $3, 1000 FROM unnest($1::uuid[]) AS u",
            users[1:], *POINT)
        await conn.execute("VACUUM ANALYZE lost_watches")
    finally:
        await conn.close()
    pairs = list(zip(users, sessions, strict=True))
    return pairs[1:], pairs[0]


async def petspark_side(node: ServerProcess, dsn: str, watchers: int, bursts: int) -> Side:
    from server.auth.tokens import AccessTokens

    side = Side("petspark lost.report -> watchers")
    watcher_ids, reporter = await seed(dsn, watchers)
    tokens = AccessTokens(SECRET, None, 3600)

    def token(user: str, session: str) -> str:
        return tokens.issue(user_id=user, role="user", session_id=session)[0]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        socks = await bounded_gather(OPEN_CONCURRENCY, [
            lambda u=u, s=s: open_petspark(session, node.ws_url, token(u, s))  # type: ignore[misc]
            for u, s in watcher_ids])
        rec = Watchers(socks)
        rep = await open_petspark(session, node.ws_url, token(*reporter))
        await asyncio.sleep(0.5)
        for n in range(bursts):
            rec.expect(watchers)
            report = ('{"type":"lost.report","id":"r' + str(n) + '","description":"Black cat",'
                      f'"location":{{"lat":{POINT[0]},"lng":{POINT[1]}}},"radius_m":2000}}')
            t0 = time.perf_counter()
            await rep.send_str(report)
            while True:
                reply = await rep.receive(timeout=BURST_TIMEOUT_S)
                if reply.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"reporter socket: {reply}")
                if reply.data.startswith('{"type":"error"'):
                    raise RuntimeError(f"lost.report refused: {reply.data}")
                if reply.data.startswith('{"type":"ok"'):
                    break
            try:
                await asyncio.wait_for(rec.done.wait(), BURST_TIMEOUT_S)
            except TimeoutError:
                pass
            side.burst(t0, rec.arrivals, watchers)
        await rep.close()
        await rec.close()
    return side


async def bench(admin_dsn: str, watchers: int, bursts: int) -> None:
    print(f"lost alert bench — {machine()}")
    print(f"  {watchers:,} watcher sockets, one lost.report per burst, {bursts} bursts; "
          "server(s), PostgreSQL and this load generator share the machine")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")
    raw = script_server(FANOUT_SCRIPT, "raw-broadcast", "raw aiohttp")
    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as data:
            node = petspark_server(dsn, data, "petspark", SECRET_KEY=SECRET,
                                   WS_HANDSHAKES_PER_ADDRESS="10000")
            try:
                await raw.start()
                await node.start()
                ours = await petspark_side(node, dsn, watchers, bursts)
                base = await raw_side(raw, watchers, bursts)
            finally:
                raw.stop()
                node.stop()
    print("\n[results]")
    print(ours.line())
    print(base.line())
    ratio = ours.rate / base.rate if base.rate else 0.0
    p99 = percentile(ours.lasts, 99) * 1000
    print(f"  ratio deliveries/s petspark/raw = {ratio:.2f} (target >= 0.5: "
          f"{'met' if ratio >= 0.5 else 'MISSED'}); last watcher p99 {p99:.1f} ms "
          f"(target <= 50 ms: {'met' if p99 <= 50 else 'MISSED'})")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()
    if not (1 <= args.watchers <= 5000 and 1 <= args.bursts <= 200):
        parser.error("bounded: 1..5000 watchers, 1..200 bursts")
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn:
        asyncio.run(asyncio.wait_for(bench(admin_dsn, args.watchers, args.bursts),
                                     timeout=600))


if __name__ == "__main__":
    main()
