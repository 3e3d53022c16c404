"""Issue #14: pushes per second through the outbox worker and the Web Push provider, with
1,000 offline users, and the server's event-loop lag meanwhile.

    python3 dev.py bench push [--users 1000] [--rounds 3]     # ~40 s

The server runs in this process (``create_app`` on an ``AppRunner``, its own database,
single node) so that a 1 ms probe timer on the same loop measures the lag the server's
sockets would see. A receiver subprocess on loopback answers 201 to every push without
decrypting and counts them. Each user has one Web Push subscription (its own keys, so
every push is a real aes128gcm encryption and a VAPID header) and no socket.

1. **Baseline, same run:** ``WebPushProvider.send`` called directly, one push per
   user, 50 in flight (the worker's default ``PUSH_CONCURRENCY``).
2. **The worker draining a backlog:** one ``notify`` per user written while the worker
   is stopped, then timed from its start to the receiver's 1,000th push: deciding each
   outbox row, the delivery rows, claims, unread counts and committing each outcome —
   everything exactly-once costs.
3. **The worker while the notifications are written** (100 per transaction, as an area
   writes them, in this same process): from the first commit to the last push.

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp
import asyncpg
from aiohttp import web

from bench._harness import bench_postgres, free_port, machine, temp_dir, throwaway_database
from bench.push_crypto import subscription
from server.app import create_app
from server.domain.notifications.service import notify
from server.domain.push.service import PushService
from server.push.provider import PushDevice, PushPayload
from server.push.vapid import generate_key
from server.push.webpush import WebPushProvider
from server.settings import Settings
from server.state import RUNTIME

RECEIVER = """
import sys
from aiohttp import web
count = 0
async def push(request):
    global count
    await request.read()
    count += 1
    return web.Response(status=201)
async def total(request):
    return web.Response(text=str(count))
app = web.Application()
app.router.add_post("/push/{id}", push)
app.router.add_get("/count", total)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

PAYLOAD = PushPayload(kind="chat.message", title="New message from Biscuit",
                      body="Walk at six? Bring the ball",
                      data={"conversation_id": "4f1c2a9e-1d2b-4c61-9b0e-5d7c1a2b3c4d"},
                      unread_count=3)


async def with_lag_probe(work: Callable[[], Awaitable[int]]) -> tuple[float, float, float]:
    """(items/s, p50 lag ms, p99 lag ms) of ``work`` under a 1 ms probe timer."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(max(0.0, time.perf_counter() - t - 0.001))

    task = asyncio.create_task(probe())
    start = time.perf_counter()
    count = await work()
    elapsed = time.perf_counter() - start
    done.set()
    await task
    lags.sort()

    def pct(q: float) -> float:
        return lags[min(len(lags) - 1, int(len(lags) * q))] * 1000 if lags else 0.0

    return count / elapsed, pct(0.5), pct(0.99)


async def received(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/count") as resp:
        return int(await resp.text())


async def wait_received(session: aiohttp.ClientSession, port: int, target: int,
                        timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while await received(session, port) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {await received(session, port)} of {target} pushes")
        await asyncio.sleep(0.005)


async def seed(pool: asyncpg.Pool, users: int, port: int) -> list[str]:
    ids = [r["id"] for r in await pool.fetch(
        """INSERT INTO users (email, display_name, password_hash)
           SELECT 'push-bench-' || i || '@example.com', 'User ' || i, '!'
           FROM generate_series(1, $1) AS i RETURNING id::text AS id""", users)]
    subs = [subscription(f"http://127.0.0.1:{port}/push/{i}") for i in range(users)]
    await pool.executemany(
        "INSERT INTO devices (user_id, platform, token, p256dh, auth) "
        "VALUES ($1, 'webpush', $2, $3, $4)",
        [(uid, s.endpoint, s.keys.p256dh, s.keys.auth) for uid, s in zip(ids, subs, strict=True)])
    return ids


async def baseline(vapid: str, port: int, users: int) -> tuple[float, float, float]:
    provider = WebPushProvider(vapid, "mailto:bench@petspark.example", allow_private=True)
    devices = [PushDevice(id=f"d{i}", platform="webpush",
                          subscription=subscription(f"http://127.0.0.1:{port}/push/{i}"))
               for i in range(users)]
    slots = asyncio.Semaphore(50)

    async def one(device: PushDevice) -> bool:
        async with slots:
            return (await provider.send(device, PAYLOAD)).outcome == "sent"

    async def work() -> int:
        return sum(await asyncio.gather(*(one(d) for d in devices)))

    try:
        return await with_lag_probe(work)
    finally:
        await provider.close()


async def write_notifications(app: web.Application, user_ids: list[str]) -> None:
    deps = app[RUNTIME].deps
    for start in range(0, len(user_ids), 100):
        async with deps.stream.transaction() as tx:
            for uid in user_ids[start:start + 100]:
                await notify(tx, deps.presence, [uid], kind="chat.message",
                             title=PAYLOAD.title, body=PAYLOAD.body,
                             data={"conversation_id": f"c-{uid}"}, online={uid: False})


async def through_worker(app: web.Application, session: aiohttp.ClientSession, port: int,
                         user_ids: list[str], *, backlog: bool) -> tuple[float, float, float]:
    """``backlog``: the notifications are written while the worker is stopped and timed
    from its start (the worker alone); else written while it runs (writes included)."""
    before = await received(session, port)
    worker = app[RUNTIME].commands.service(PushService)
    if backlog:
        await worker.stop()
        await write_notifications(app, user_ids)

    async def work() -> int:
        if backlog:
            await worker.start()
        else:
            await write_notifications(app, user_ids)
        await wait_received(session, port, before + len(user_ids))
        return len(user_ids)

    return await with_lag_probe(work)


async def run(admin: str, users: int, rounds: int) -> None:
    vapid, _ = generate_key()
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(port))
    try:
        async with throwaway_database(admin) as dsn, aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 15
            while True:
                try:
                    await received(session, port)
                    break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            with temp_dir() as data:
                settings = Settings(
                    database_url=dsn, data_dir=str(Path(data)), secret_key="bench-" + "k" * 40,
                    log_level="warning", vapid_private_key=vapid,
                    vapid_subject="mailto:bench@petspark.example",
                    push_allow_private_endpoints=True, port=free_port())
                app = create_app(settings)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", settings.port)
                await site.start()
                try:
                    user_ids = await seed(app[RUNTIME].deps.db, users, port)
                    print(f"seeded {users} offline users, one Web Push subscription each",
                          flush=True)
                    base_runs, drain_runs, live_runs = [], [], []
                    for i in range(rounds):  # alternate, report medians
                        base_runs.append(await baseline(vapid, port, users))
                        drain_runs.append(await through_worker(app, session, port, user_ids,
                                                               backlog=True))
                        live_runs.append(await through_worker(app, session, port, user_ids,
                                                              backlog=False))
                        print(f"round {i + 1}: provider {base_runs[-1][0]:.0f}/s, worker "
                              f"(backlog) {drain_runs[-1][0]:.0f}/s, worker (with the writes) "
                              f"{live_runs[-1][0]:.0f}/s", flush=True)
                    report(users, base_runs, drain_runs, live_runs)
                    pool = app[RUNTIME].deps.db
                    while await pool.fetchval("SELECT count(*) FROM push_deliveries "
                                              "WHERE state IN ('pending', 'sending')"):
                        await asyncio.sleep(0.01)  # the last outcomes are being committed
                    counts = await app[RUNTIME].deps.db.fetch(
                        "SELECT state, count(*) AS n FROM push_deliveries GROUP BY state")
                    print("delivery rows: " + ", ".join(f"{r['state']} {r['n']}"
                                                        for r in counts))
                finally:
                    await runner.cleanup()
    finally:
        receiver.terminate()
        await asyncio.wait_for(receiver.wait(), 5)


def report(users: int, base: list[tuple[float, float, float]],
           drain: list[tuple[float, float, float]],
           live: list[tuple[float, float, float]]) -> None:
    def med(runs: list[tuple[float, float, float]], i: int) -> float:
        return statistics.median(r[i] for r in runs)

    print(f"\n{machine()}; {users} offline users, medians of {len(base)} rounds")
    print(f"{'':34} {'pushes/s':>9} {'ratio':>6} {'lag p50 ms':>11} {'lag p99 ms':>11}")
    rate_b = med(base, 0)
    for label, runs in (("provider alone (baseline)", base),
                        ("worker, draining a backlog", drain),
                        ("worker, while notify() writes", live)):
        print(f"{label:34} {med(runs, 0):9.0f} {med(runs, 0) / rate_b:6.2f} "
              f"{med(runs, 1):11.2f} {med(runs, 2):11.2f}")
    print("provider = WebPushProvider.send called directly, 50 in flight; worker = outbox → "
          "decide → claim → send → record (PUSH_CONCURRENCY 50); 'while notify() writes' "
          "includes writing the 1,000 notifications, 100 per transaction, in this process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_postgres() as admin:
        try:
            import uvloop

            uvloop.run(run(admin, args.users, args.rounds))
        except ImportError:  # pragma: no cover
            asyncio.run(run(admin, args.users, args.rounds))


if __name__ == "__main__":
    main()
