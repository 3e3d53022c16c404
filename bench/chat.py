"""Chat benchmark: N conversations of two users each (2N sockets), every user sending
messages at a fixed rate against a server subprocess on loopback.

    python3 dev.py bench chat                     # 500 conversations, 1 msg/s, 30 s
    python3 dev.py bench chat --conversations 100 --duration 10 --rates 1,2,4

Reports, per rate step: messages sent and delivered per second, p50/p99/max
send→deliver latency (the time from writing ``chat.send`` on the sender's socket
to the ``chat.message`` event arriving on the *other* member's socket; one
clock, one process), and the server's CPU (user+system seconds / wall
seconds, from /proc). Steps stop early once p99 exceeds ``--p99-limit-ms``:
the previous step is the maximum sustainable rate.

Set-up writes users, sessions, pets, matches and conversations straight into a
fresh database (1,000 registrations through the HTTP route would measure
password hashing, and the register throttle would refuse them) and mints access
tokens with the server's key. Bounded: loopback only, a fixed number of
sockets and a fixed duration per step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import msgspec

from bench._harness import bench_postgres, bench_redis
from server.auth.tokens import AccessTokens
from server.resources import dev_services as services
from server.resources.migrations import migrate

SECRET = "bench-secret-key-" + "x" * 32
ROOT = Path(__file__).resolve().parents[1]


class _Msg(msgspec.Struct):
    client_msg_id: str = ""
    sender_id: str = ""


class _Frame(msgspec.Struct):
    type: str
    message: _Msg | None = None


_decode = msgspec.json.Decoder(_Frame).decode


async def seed(dsn: str, conversations: int) -> list[tuple[str, str, str, str]]:
    """Return (user_a, user_b, conversation_id, session ids…) rows, inserted in bulk."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        users = [str(uuid.uuid4()) for _ in range(2 * conversations)]
        sessions = [str(uuid.uuid4()) for _ in users]
        await conn.executemany(
            "INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, $3, 'x')",
            [(u, f"bench-{u}@example.com", f"U{i}") for i, u in enumerate(users)])
        await conn.executemany(
            "INSERT INTO sessions (id, user_id, kind) VALUES ($1, $2, 'token')",
            list(zip(sessions, users, strict=True)))
        pets = [str(uuid.uuid4()) for _ in users]
        await conn.executemany(
            "INSERT INTO pets (id, owner_id, name, species) VALUES ($1, $2, 'P', 'dog')",
            list(zip(pets, users, strict=True)))
        out = []
        for i in range(conversations):
            a, b = users[2 * i], users[2 * i + 1]
            pa, pb = sorted((pets[2 * i], pets[2 * i + 1]))
            ua = a if pa == pets[2 * i] else b
            ub = b if ua == a else a
            conv = await conn.fetchval(
                "INSERT INTO conversations DEFAULT VALUES RETURNING id::text")
            await conn.execute("INSERT INTO conversation_members (conversation_id, user_id) "
                               "VALUES ($1, $2), ($1, $3)", conv, a, b)
            await conn.execute("INSERT INTO matches (pet_a, pet_b, user_a, user_b, "
                               "conversation_id) VALUES ($1, $2, $3, $4, $5)",
                               pa, pb, ua, ub, conv)
            out.append((a, b, conv, f"{sessions[2 * i]} {sessions[2 * i + 1]}"))
        return out
    finally:
        await conn.close()


class Stats:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.sent = 0
        self.errors = 0
        self.recording = False


async def user_loop(session: aiohttp.ClientSession, url: str, token: str, user_id: str,
                    conversation_id: str, stats: Stats, ready: asyncio.Event,
                    rate: list[float], stop: asyncio.Event, started: list[int]) -> None:
    ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                                  protocols=("petspark.v1.json",), max_msg_size=0)
    await ws.send_str('{"type":"hello"}')
    welcome = await ws.receive()
    if welcome.type != aiohttp.WSMsgType.TEXT or '"welcome"' not in welcome.data:
        raise RuntimeError(f"no welcome for {user_id}: {welcome}")
    started[0] += 1
    pong = '{"type":"pong"}'

    async def reader() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.data
            if data.startswith('{"type":"ping"'):
                await ws.send_str(pong)
                continue
            if not data.startswith('{"type":"chat.message"'):
                if data.startswith('{"type":"error"'):
                    stats.errors += 1
                continue
            frame = _decode(data)
            m = frame.message
            if m is None or m.sender_id == user_id:
                continue
            t0 = stats.sent_at.pop(m.client_msg_id, None)
            if t0 is not None and stats.recording:
                stats.latencies.append(time.perf_counter() - t0)

    read_task = asyncio.create_task(reader())
    await ready.wait()
    n = 0
    prefix = uuid.uuid4().hex[:8]
    # Spread the first sends over one period so the load is smooth, not in bursts.
    await asyncio.sleep((hash(user_id) % 1000) / 1000 / rate[0])
    next_at = time.perf_counter()
    while not stop.is_set():
        n += 1
        key = f"{prefix}-{n}"
        frame = (f'{{"type":"chat.send","id":"{key}","conversation_id":"{conversation_id}",'
                 f'"client_msg_id":"{key}","body":"hello {n}"}}')
        stats.sent_at[key] = time.perf_counter()
        await ws.send_str(frame)
        if stats.recording:
            stats.sent += 1
        next_at += 1.0 / rate[0]
        delay = next_at - time.perf_counter()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
        else:
            next_at = time.perf_counter()  # fell behind: do not burst to catch up
    await ws.close()
    read_task.cancel()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace, admin_dsn: str, redis_url: str) -> None:
    dsn = await services.create_database(admin_dsn, prefix="petspark_bench")
    server: subprocess.Popen[bytes] | None = None
    try:
        print(f"seeding {args.conversations} conversations …", flush=True)
        rows = await seed(dsn, args.conversations)
        port = services.free_port()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": dsn,
               "REDIS_URL": redis_url if args.redis else "", "SECRET_KEY": SECRET,
               "DATA_DIR": tempfile.mkdtemp(prefix="bench-chat-"), "LOG_LEVEL": "WARNING",
               "WS_MAX_CONNECTIONS_PER_USER": "5"}
        if not args.redis:
            env.pop("REDIS_URL")
        log_path = Path(env["DATA_DIR"]) / "server.log"
        # Blocking calls are fine here: start-up, before any load is measured.
        with open(log_path, "wb") as log_file:  # noqa: ASYNC230
            server = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "server", "serve"], cwd=ROOT,
                env=env, stdout=log_file, stderr=subprocess.STDOUT)
        print(f"server log: {log_path}", flush=True)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        tokens = AccessTokens(SECRET, None, 3600)
        stats = Stats()
        ready, stop = asyncio.Event(), asyncio.Event()
        rate = [args.rates[0]]
        started = [0]
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            tasks = []
            for a, b, conv, sids in rows:
                sa, sb = sids.split()
                for user, sid in ((a, sa), (b, sb)):
                    token, _ = tokens.issue(user_id=user, role="user", session_id=sid)
                    tasks.append(asyncio.create_task(user_loop(
                        session, base.replace("http", "ws") + "/ws", token, user, conv,
                        stats, ready, rate, stop, started)))
                    if len(tasks) % 100 == 0:
                        await asyncio.sleep(0.05)
            while started[0] < len(tasks):
                await asyncio.sleep(0.1)
                failed = [t for t in tasks if t.done()]
                if failed:
                    failed[0].result()
            print(f"{len(tasks)} sockets open; server pid {server.pid}", flush=True)
            ready.set()
            print("rate/user  sockets  sent/s  delivered/s  p50_ms  p99_ms  max_ms  "
                  "server_cpu  errors", flush=True)
            best = None
            for step_rate in args.rates:
                rate[0] = step_rate
                await asyncio.sleep(2.0)  # settle at the new rate, not measured
                stats.latencies.clear()
                stats.sent = 0
                stats.errors = 0
                stats.recording = True
                c0, t0 = cpu_seconds(server.pid), time.perf_counter()
                await asyncio.sleep(args.duration)
                stats.recording = False
                wall = time.perf_counter() - t0
                cpu = (cpu_seconds(server.pid) - c0) / wall
                lat = stats.latencies
                p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
                print(f"{step_rate:9.2f}  {len(tasks):7d}  {stats.sent / wall:6.0f}  "
                      f"{len(lat) / wall:11.0f}  {p50:6.1f}  {p99:6.1f}  "
                      f"{max(lat, default=0) * 1000:6.0f}  {cpu * 100:9.0f}%  "
                      f"{stats.errors:6d}", flush=True)
                if p99 <= args.p99_limit_ms and (best is None or step_rate > best):
                    best = step_rate
                if p99 > 20 * args.p99_limit_ms:
                    break  # far past saturation: higher steps only queue up
            async with session.get(base + "/metrics") as resp:
                text = await resp.text()
            total = {
                line.split("{")[0].rsplit("_", 1)[1]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith(("petspark_ws_command_seconds_sum{",
                                    "petspark_ws_command_seconds_count{"))
                and 'type="chat.send"' in line}
            if total.get("count"):
                print(f"server-side chat.send handling (all steps, incl. settling): mean "
                      f"{total['sum'] / total['count'] * 1000:.1f} ms over "
                      f"{total['count']:.0f} commands", flush=True)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if len(args.rates) > 1:
                print(f"highest step with p99 ≤ {args.p99_limit_ms:.0f} ms: "
                      f"{best if best is not None else 'none'} msg/s per user", flush=True)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        await services.drop_database(admin_dsn, dsn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per rate step")
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[1.0], help="messages per second per user, one step each")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--redis", action=argparse.BooleanOptionalAction, default=True,
                        help="run the server with Redis (default) or the in-process broker")
    args = parser.parse_args()
    if args.conversations > 2000 or args.duration > 120:
        parser.error("bounded: at most 2000 conversations and 120 s per step")
    with bench_postgres() as admin_dsn, bench_redis() as redis_url:
        asyncio.run(run(args, admin_dsn, redis_url))


if __name__ == "__main__":
    main()
