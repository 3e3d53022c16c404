"""Issue 4 benchmark: the WebSocket gateway against a raw aiohttp echo server.

    python3 dev.py bench gateway         # ~1 min, prints figures and ratios
    python3 dev.py bench gateway --idle  # only part 4 (idle memory), ~20 s

Both servers run as subprocesses on uvloop (``python -m server`` installs uvloop
itself; the raw server is this script in ``raw-echo`` mode); the load generator is
this process (uvloop, pre-encoded frames, replies counted, not decoded).

1. Round trips/s over 100 connections for a fixed time: a command → reply through
   our full path (JSON decode to the typed command, rate bucket, dispatch table,
   reply encoded, queued, written by the connection's writer task) vs. raw echo.
2. A small command, ``presence.query`` (the caller's matched users from the connection's
   memo, then one Redis call for the partner, who has no socket here), round trips over
   the same 100 sockets, against raw echo.
3. A one-query command, ``pets.mine`` (one indexed PostgreSQL query), against a raw
   aiohttp + asyncpg server answering the same command with the same SQL (this script in
   ``raw-asyncpg`` mode; same client, same pool size).
4. RSS per 1,000 idle connections: hold 5,000 sockets (ours authenticated, after
   hello/welcome) and compare the server process's RSS growth.

Every figure prints its ratio against the baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import msgspec
import psutil

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._harness import (
    ServerProcess,
    bench_postgres,
    bench_redis,
    bounded_gather,
    machine,
    petspark_server,
    register_users,
    script_server,
    temp_dir,
    throwaway_database,
)
from server.resources.dev_services import delete_prefix

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
# pets.mine's query, as server/domain/pets/store.py runs it (the raw baseline runs it too).
PETS_MINE_SQL = (
    "SELECT p.id::text AS id, p.owner_id::text AS owner_id, p.name, p.species, p.breed, "
    "p.sex, p.birth_date, p.bio, p.photo_ids::text[] AS photo_ids, p.lat, p.lng "
    "FROM pets p WHERE p.owner_id = $1 ORDER BY p.created_at, p.id")
RAW_POOL_MAX = 20  # = DB_POOL_MAX of the petspark bench server
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


# --- raw aiohttp + asyncpg server (the baseline of a one-query command) -------------------
def run_raw_asyncpg(port: int) -> None:
    """Answers every text frame like ``pets.mine`` does for the user named in the URL's
    ``?user=``: decode, one query (the same SQL), the result encoded as an ``ok`` reply."""
    import uvloop
    from aiohttp import web

    decode, encode = msgspec.json.decode, msgspec.json.encode
    state: dict[str, asyncpg.Pool] = {}

    def pet(row: asyncpg.Record) -> dict[str, object]:
        out: dict[str, object] = {k: row[k] for k in ("id", "owner_id", "name", "species")}
        for k in ("breed", "sex", "birth_date", "bio"):
            if row[k] is not None:
                out[k] = row[k]
        out["photo_ids"] = list(row["photo_ids"])
        if row["lat"] is not None:
            out["location"] = {"lat": row["lat"], "lng": row["lng"]}
        return out

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        user_id = request.query["user"]
        pool = state["pool"]
        ws = web.WebSocketResponse(heartbeat=50.0, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                command = decode(msg.data)
                rows = await pool.fetch(PETS_MINE_SQL, user_id)
                reply = {"type": "ok", "id": command.get("id"),
                         "result": {"pets": [pet(r) for r in rows]}}
                await ws.send_frame(encode(reply), aiohttp.WSMsgType.TEXT)
        return ws

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def no_reset(conn: asyncpg.Connection) -> None:
        return None  # as the server's pool: no reset query after each release

    async def open_pool(app: web.Application) -> None:
        state["pool"] = await asyncpg.create_pool(os.environ["RAW_DATABASE_URL"], min_size=1,
                                                  max_size=RAW_POOL_MAX, reset=no_reset)

    app = web.Application()
    app.on_startup.append(open_pool)
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


def raw_asyncpg_opener(server: ServerProcess, user_ids: list[str]) -> Opener:
    async def open_one(session: aiohttp.ClientSession, i: int) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(f"{server.ws_url}?user={user_ids[i % len(user_ids)]}",
                                      autoping=True)
        await ws.send_str(HELLO)  # answered like a command: both sides exchanged a frame
        await ws.receive(timeout=30)
        return ws
    return open_one


def raw_asyncpg_server(dsn: str) -> ServerProcess:
    server = script_server(SCRIPT, "raw-asyncpg", "raw aiohttp+asyncpg")
    server.env["RAW_DATABASE_URL"] = dsn
    return server


async def seed_matches(dsn: str, user_ids: list[str]) -> list[str]:
    """One pet per user and a live match between users 2k and 2k+1 (straight into the
    database); returns each user's presence.query frame: its partner and itself.

    The bench connects only the even users: a partner has no socket on the server, so
    each query makes the one Redis lookup (a user with a socket on the answering node
    is online from its hub, no Redis call)."""
    conn = await asyncpg.connect(dsn)
    try:
        pets = await conn.fetch(
            "INSERT INTO pets (owner_id, name, species) SELECT u, 'Rex', 'dog' "
            "FROM unnest($1::uuid[]) AS u RETURNING id::text, owner_id::text", user_ids)
        pet_of = {r["owner_id"]: r["id"] for r in pets}
        frames = []
        for k in range(0, len(user_ids) - 1, 2):
            pair = sorted((pet_of[u], u) for u in user_ids[k:k + 2])
            conv = await conn.fetchval(
                "INSERT INTO conversations DEFAULT VALUES RETURNING id::text")
            await conn.execute("INSERT INTO conversation_members (conversation_id, user_id) "
                               "VALUES ($1, $2), ($1, $3)", conv, pair[0][1], pair[1][1])
            await conn.execute("INSERT INTO matches (pet_a, pet_b, user_a, user_b, "
                               "conversation_id) VALUES ($1, $2, $3, $4, $5)",
                               pair[0][0], pair[1][0], pair[0][1], pair[1][1], conv)
        for k, user in enumerate(user_ids):
            partner = user_ids[k ^ 1] if (k ^ 1) < len(user_ids) else user
            frames.append(msgspec.json.encode({"type": "presence.query", "id": "c1",
                                               "user_ids": [partner, user]}).decode())
        return frames
    finally:
        await conn.close()


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))


async def round_trips(server: ServerProcess, opener: Opener,
                      frames: str | list[str]) -> tuple[float, float, str]:
    """Round trips/s over CONNECTIONS sockets, each in a send→receive loop; and CPU use.
    ``frames``: one frame for all, or socket i sends ``frames[i % len(frames)]`` (socket i
    is opened for user i % users, so it can name its user's partner)."""
    async with new_session() as session:
        sockets = await bounded_gather(
            OPEN_CONCURRENCY,
            [lambda i=i: opener(session, i) for i in range(CONNECTIONS)])  # type: ignore[misc]
        first: list[str] = []
        counting = False
        count = 0
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + WARMUP_S + MEASURE_S

        async def drive(ws: aiohttp.ClientWebSocketResponse, frame: str) -> None:
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
                    if '"id":"c1"' not in data:
                        continue  # an event (a matched user's presence), not the reply
                    break
                if not first:
                    first.append(data)
                    FIRST_REPLY.setdefault((server.name, frame), data)
                if counting:
                    count += 1

        per_socket = [frames] * len(sockets) if isinstance(frames, str) else [
            frames[i % len(frames)] for i in range(len(sockets))]
        tasks = [asyncio.create_task(drive(ws, f)) for ws, f in zip(sockets, per_socket,
                                                                    strict=True)]
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
        # Warm up: first-connection allocations (imports, caches) and the Redis client's
        # pool growing to OPEN_CONCURRENCY connections are per node, not per socket.
        warm = await bounded_gather(OPEN_CONCURRENCY, [
            lambda i=i: opener(session, i) for i in range(2 * OPEN_CONCURRENCY)])  # type: ignore[misc]
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


async def bench(admin_dsn: str, redis_url: str, idle_only: bool = False) -> None:
    print(f"gateway bench — {machine()}")
    print(f"  round trips: {CONNECTIONS} connections, {TRIALS} alternating trials of "
          f"{WARMUP_S:.0f}s warm-up + {MEASURE_S:.0f}s per server (median reported); "
          f"idle memory: {IDLE_CONNECTIONS} sockets")
    print("  petspark server: python -m server (uvloop), PostgreSQL, Redis (broker and "
          "presence, as in production),\n  LOG_LEVEL=warning, rate limits raised, argon2 "
          "lowered for registration\n  (PASSWORD_HASH_TIME_COST=1, PASSWORD_HASH_MEMORY_KIB=8)")
    print(f"  background load at start (1-min loadavg): {os.getloadavg()[0]:.2f}")

    async with throwaway_database(admin_dsn) as dsn:
        with temp_dir() as data_dir:
            raw = script_server(SCRIPT, "raw-echo", "raw aiohttp")
            raw_db = raw_asyncpg_server(dsn)
            prefix = f"petspark-bench-{secrets.token_hex(4)}:"
            ours = petspark_server(dsn, data_dir, REDIS_URL=redis_url, REDIS_PREFIX=prefix)
            try:
                await raw.start()
                await ours.start()
                await raw_db.start()
                everyone = await register_users(ours.base, 2 * IDLE_USERS)
                presence_frames = (await seed_matches(
                    dsn, [user_id for user_id, _ in everyone]))[::2]
                users = everyone[::2]  # the ones that connect; their partners never do
                tokens = [token for _, token in users]
                user_ids = [user_id for user_id, _ in users]
                print(f"  registered {len(everyone)} users over HTTP, one pet each, matched "
                      f"in pairs; one of each pair connects ({IDLE_CONNECTIONS // IDLE_USERS} "
                      f"sockets each), so presence.query asks Redis about the other")

                print("\n[idle memory]")
                print("  raw aiohttp echo:")
                raw_mem = await idle_memory(raw, raw_opener(raw))
                print("  petspark gateway (authenticated, after hello/welcome):")
                our_mem = await idle_memory(ours, petspark_opener(ours, tokens))
                if idle_only:
                    print(f"\n[results]\n  idle memory: petspark {our_mem / 2**20:.2f} MiB vs "
                          f"raw {raw_mem / 2**20:.2f} MiB per 1,000 sockets = "
                          f"{our_mem / raw_mem:.2f}x (target <= 1.2x: "
                          f"{'met' if our_mem / raw_mem <= 1.2 else 'MISSED'})")
                    return

                print("\n[round trips]")
                runs: dict[str, list[float]] = {}
                cost: dict[str, list[float]] = {}
                plan: list[tuple[str, ServerProcess, Opener, str | list[str]]] = [
                    ("raw echo", raw, raw_opener(raw), COMMAND),
                    ("petspark command", ours, petspark_opener(ours, tokens), COMMAND),
                    ("petspark presence.query", ours, petspark_opener(ours, tokens),
                     presence_frames),
                    ("raw aiohttp+asyncpg pets.mine", raw_db,
                     raw_asyncpg_opener(raw_db, user_ids), DB_COMMAND),
                    ("petspark pets.mine", ours, petspark_opener(ours, tokens), DB_COMMAND),
                ]
                width = max(len(name) for name, *_ in plan)
                for trial in range(1, TRIALS + 1):
                    for name, server, opener, frames in plan:
                        rate, us, cpu = await round_trips(server, opener, frames)
                        runs.setdefault(name, []).append(rate)
                        cost.setdefault(name, []).append(us)
                        print(f"  trial {trial} {name + ':':{width + 1}} {rate:8,.0f}/s  ({cpu})")
                for (name, frame), reply in FIRST_REPLY.items():
                    if name != raw.name:  # the echo's reply is the frame itself
                        print(f"  {name} reply to {frame[:40]}: {reply[:110]}")
            finally:
                raw.stop()
                raw_db.stop()
                ours.stop()
                await asyncio.to_thread(delete_prefix, redis_url, prefix)

    med = {name: statistics.median(values) for name, values in runs.items()}
    cpu_us = {name: statistics.median(values) for name, values in cost.items()}
    raw_rtt, our_rtt = med["raw echo"], med["petspark command"]
    presence_rtt = med["petspark presence.query"]
    raw_db_rtt, db_rate = med["raw aiohttp+asyncpg pets.mine"], med["petspark pets.mine"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("\n[results] (medians of the trials)")
    print(f"  command round trips: petspark {our_rtt:,.0f}/s vs raw echo {raw_rtt:,.0f}/s "
          f"= {100 * our_rtt / raw_rtt:.0f}% (target >= 60%: {verdict(our_rtt / raw_rtt >= 0.6)})")
    print("    (the command is `auth.refresh` with a token that fails its signature check: "
          "decode,\n     rate limit, dispatch, handler, encoded `error` reply — no I/O)")
    print(f"  presence.query (memoised matched set + one Redis call): {presence_rtt:,.0f}/s vs "
          f"raw echo {raw_rtt:,.0f}/s = {presence_rtt / raw_rtt:.2f} (target >= 0.25: "
          f"{verdict(presence_rtt / raw_rtt >= 0.25)})")
    print(f"  one-query command, pets.mine: petspark {db_rate:,.0f}/s vs raw aiohttp+asyncpg "
          f"{raw_db_rtt:,.0f}/s = {db_rate / raw_db_rtt:.2f} (target >= 0.6: "
          f"{verdict(db_rate / raw_db_rtt >= 0.6)}); {100 * db_rate / raw_rtt:.0f}% of the echo")
    raw_cost, our_cost = cpu_us["raw echo"], cpu_us["petspark command"]
    print(f"  server CPU per round trip: petspark {our_cost:.1f} µs vs raw {raw_cost:.1f} µs "
          f"-> CPU-bound capacity {100 * raw_cost / our_cost:.0f}% of raw (the machine is "
          f"shared,\n    so this is the steadier figure when neither process gets a whole core)")
    print(f"    presence.query {cpu_us['petspark presence.query']:.1f} µs; pets.mine "
          f"{cpu_us['petspark pets.mine']:.1f} µs vs raw aiohttp+asyncpg "
          f"{cpu_us['raw aiohttp+asyncpg pets.mine']:.1f} µs (server process only; PostgreSQL "
          f"and Redis not counted)")
    print(f"  idle memory: petspark {our_mem / 2**20:.2f} MiB vs raw {raw_mem / 2**20:.2f} MiB "
          f"per 1,000 sockets = {our_mem / raw_mem:.2f}x (target <= 1.2x: "
          f"{verdict(our_mem / raw_mem <= 1.2)})")
    print(f"  background load at end (1-min loadavg): {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "raw-echo":
        run_raw_echo(int(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "raw-asyncpg":
        run_raw_asyncpg(int(sys.argv[2]))
        return
    idle_only = sys.argv[1:] == ["--idle"]
    if sys.argv[1:] and not idle_only:
        sys.exit(f"usage: {sys.argv[0]} [--idle]")
    import uvloop

    uvloop.install()
    with bench_postgres() as admin_dsn, bench_redis() as redis_url:
        asyncio.run(asyncio.wait_for(bench(admin_dsn, redis_url, idle_only), timeout=420))


if __name__ == "__main__":
    main()
