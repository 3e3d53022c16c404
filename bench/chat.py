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

``--max-rate`` (issue #19): the highest *lossless* total rate with p99 < 100 ms over
100 pairs, stepping the offered rate up (bounded steps), for petspark and then, in the
same run, for a python-socketio relay (this script in ``socketio-relay`` mode: a tiny
non-durable aiohttp app that emits each message to the sender's partner), with the same
lean aiohttp client (Engine.IO v4 frames written by hand); prints both and the ratio.
A step is lossless when every message sent in it reached the partner (2 s grace) and
no error came back; stepping stops at the first lossy step or one with p99 over 5 times the
limit (a lossless step just over the limit, e.g. one stall on a shared box, does not end
the search, but does not count).

    python3 dev.py bench chat --max-rate [--pairs 100] [--step-s 4]

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
SCRIPT = os.path.abspath(__file__)


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


async def start_server(dsn: str, redis_url: str | None, **extra: str
                       ) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m server serve`` on a free loopback port, ready; (process, base URL)."""
    port = services.free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": dsn,
           "SECRET_KEY": SECRET, "DATA_DIR": tempfile.mkdtemp(prefix="bench-chat-"),
           "LOG_LEVEL": "WARNING", "WS_MAX_CONNECTIONS_PER_USER": "5",
           "WS_HANDSHAKES_PER_ADDRESS": "100000", **extra}
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    log_path = Path(env["DATA_DIR"]) / "server.log"
    # Blocking calls are fine here: start-up, before any load is measured.
    with open(log_path, "wb") as log_file:  # noqa: ASYNC230
        server = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "server", "serve"], cwd=ROOT,
            env=env, stdout=log_file, stderr=subprocess.STDOUT)
    print(f"server log: {log_path}", flush=True)
    base = f"http://127.0.0.1:{port}"
    await wait_ready(base + "/healthz")
    return server, base


async def wait_ready(url: str, tries: int = 200) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(tries):
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


async def run(args: argparse.Namespace, admin_dsn: str, redis_url: str) -> None:
    dsn = await services.create_database(admin_dsn, prefix="petspark_bench")
    server: subprocess.Popen[bytes] | None = None
    try:
        print(f"seeding {args.conversations} conversations …", flush=True)
        rows = await seed(dsn, args.conversations)
        server, base = await start_server(dsn, redis_url if args.redis else None)
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


# --- --max-rate: highest lossless rate, petspark vs a python-socketio relay ---------------
STEPS = [250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 15000]
GRACE_S = 2.0


def run_socketio_relay(port: int) -> None:
    """The baseline: a python-socketio aiohttp app relaying each ``msg`` to the partner
    (not stored, no idempotency, no order guarantee beyond the socket's)."""
    import socketio  # type: ignore[import-untyped]
    import uvloop
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins=[])
    app = web.Application()
    sio.attach(app)

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, object], auth: dict[str, str]) -> None:
        await sio.enter_room(sid, auth["user"])

    @sio.event  # type: ignore[untyped-decorator]
    async def msg(sid: str, data: dict[str, str]) -> None:
        await sio.emit("msg", data, to=data["to"])

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/readyz", ready)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Step:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.sent = 0
        self.errors = 0
        self.open = False  # counting this step's sends


class Client:
    """One user's lean socket: ``send(key)`` writes a message to the partner; arrivals of
    the partner's messages are timed against ``step.sent_at``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, user: str, partner: str,
                 conversation: str, socketio: bool) -> None:
        self.ws, self.user, self.partner = ws, user, partner
        self.conversation, self.socketio = conversation, socketio
        self.step = Step()

    def frame(self, key: str) -> str:
        if self.socketio:
            return ('42["msg",{"to":"' + self.partner + '","id":"' + key
                    + '","body":"hello"}]')
        return ('{"type":"chat.send","id":"' + key + '","conversation_id":"'
                + self.conversation + '","client_msg_id":"' + key + '","body":"hello"}')

    def arrived(self, key: str) -> None:
        t0 = self.step.sent_at.pop(key, None)
        if t0 is not None:
            self.step.latencies.append(time.perf_counter() - t0)

    async def read(self, peers: dict[str, Client]) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = msg.data
            if self.socketio:
                if data == "2":
                    await self.ws.send_str("3")
                elif data.startswith('42["msg"'):
                    i = data.index('"id":"') + 6
                    peers[self.partner].arrived(data[i:data.index('"', i)])
                continue
            if data.startswith('{"type":"chat.message"'):
                m = _decode(data).message
                if m is not None and m.sender_id != self.user:
                    peers[self.partner].arrived(m.client_msg_id)
            elif data.startswith('{"type":"ping"'):
                await self.ws.send_str('{"type":"pong"}')
            elif data.startswith('{"type":"error"'):
                self.step.errors += 1


async def open_clients(session: aiohttp.ClientSession, rows: list[tuple[str, str, str, str]],
                       url: str, socketio: bool) -> list[Client]:
    tokens = AccessTokens(SECRET, None, 3600)
    sem = asyncio.Semaphore(20)

    async def one(user: str, partner: str, conv: str, sid: str) -> Client:
        async with sem:
            if socketio:
                ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
                opened = await ws.receive(timeout=10)
                assert opened.data.startswith("0"), opened
                await ws.send_str('40{"user":"' + user + '"}')
                joined = await ws.receive(timeout=10)
                assert joined.data.startswith("40"), joined
            else:
                token, _ = tokens.issue(user_id=user, role="user", session_id=sid)
                ws = await session.ws_connect(url + "/ws", protocols=("petspark.v1.json",),
                                              headers={"Authorization": f"Bearer {token}"})
                await ws.send_str('{"type":"hello"}')
                welcome = await ws.receive(timeout=10)
                assert '"welcome"' in welcome.data, welcome
            return Client(ws, user, partner, conv, socketio)

    jobs = []
    for a, b, conv, sids in rows:
        sa, sb = sids.split()
        jobs += [one(a, b, conv, sa), one(b, a, conv, sb)]
    return list(await asyncio.gather(*jobs))


async def pace(client: Client, rate: float, until: float, offset: float) -> None:
    """Send at ``rate``/s until ``until`` (perf_counter); never bursts to catch up."""
    n = 0
    prefix = uuid.uuid4().hex[:12]  # a fresh client_msg_id space for every call
    await asyncio.sleep(offset)
    next_at = time.perf_counter()
    while (now := time.perf_counter()) < until:
        n += 1
        key = f"{prefix}-{n}"
        step = client.step
        if step.open:
            step.sent_at[key] = now
            step.sent += 1
        await client.ws.send_str(client.frame(key))
        next_at += 1.0 / rate
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_at = time.perf_counter()


async def max_rate(name: str, clients: list[Client], step_s: float, p99_ms: float,
                   max_total: int) -> float:
    """Step the total offered rate up; the highest lossless step with p99 < p99_ms."""
    peers = {c.user: c for c in clients}
    readers = [asyncio.create_task(c.read(peers)) for c in clients]
    best = 0.0
    print(f"\n[{name}: {len(clients) // 2} pairs, {step_s:g} s per step]")
    print("  offered/s  sent/s  delivered  lost  errors  p50_ms  p99_ms  max_ms")
    try:
        # Warm up, unmeasured: every pool connection prepares its statements, caches fill.
        until = time.perf_counter() + 3.0
        await asyncio.gather(*(pace(c, STEPS[0] / len(clients), until, 0.0) for c in clients))
        await asyncio.sleep(GRACE_S)
        for total in (t for t in STEPS if t <= max_total):
            per_user = total / len(clients)
            for c in clients:
                c.step = Step()
            warm_until = time.perf_counter() + 1.0
            end = warm_until + step_s
            tasks = [asyncio.create_task(pace(c, per_user, end, (i % 97) / 97 / per_user))
                     for i, c in enumerate(clients)]
            await asyncio.sleep(max(0.0, warm_until - time.perf_counter()))
            for c in clients:
                c.step.open = True
            await asyncio.gather(*tasks)
            for c in clients:
                c.step.open = False
            deadline = time.perf_counter() + GRACE_S
            while (any(c.step.sent_at for c in clients)
                   and time.perf_counter() < deadline):
                await asyncio.sleep(0.05)
            sent = sum(c.step.sent for c in clients)
            lat = [x for c in clients for x in c.step.latencies]
            lost = sum(len(c.step.sent_at) for c in clients)
            errors = sum(c.step.errors for c in clients)
            p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
            print(f"  {total:9d}  {sent / step_s:6.0f}  {len(lat):9d}  {lost:4d}  {errors:6d}"
                  f"  {p50:6.1f}  {p99:6.1f}  {max(lat, default=0) * 1000:6.0f}", flush=True)
            if lost or errors or p99 > 5 * p99_ms:
                break  # saturated: higher steps only queue up
            if p99 < p99_ms:
                best = sent / step_s
            await asyncio.sleep(0.5)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    print(f"  {name}: highest lossless rate with p99 < {p99_ms:.0f} ms: {best:,.0f} msg/s")
    return best


async def run_max_rate(args: argparse.Namespace, admin_dsn: str, redis_url: str) -> None:
    print(f"chat max-rate bench — {os.cpu_count()} cores, loadavg at start "
          f"{os.getloadavg()[0]:.2f}; servers, PostgreSQL, Redis and this load generator "
          "share the machine", flush=True)
    dsn = await services.create_database(admin_dsn, prefix="petspark_bench")
    server: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    try:
        rows = await seed(dsn, args.pairs)
        server, base = await start_server(
            dsn, redis_url if args.redis else None, WS_RATE_PER_S="100000",
            WS_RATE_BURST="100000")
        port = services.free_port()
        relay = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, SCRIPT, "socketio-relay", str(port)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        relay_base = f"http://127.0.0.1:{port}"
        await wait_ready(relay_base + "/readyz")
        results = {}
        for name, url, sio in (("petspark chat.send (durable)", base, False),
                               ("python-socketio relay (not durable)", relay_base, True)):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                clients = await open_clients(http, rows, url.replace("http", "ws"), sio)
                results[sio] = await max_rate(name, clients, args.step_s, args.p99_limit_ms,
                                              args.max_total)
                await asyncio.gather(*(c.ws.close() for c in clients))
        ours, theirs = results[False], results[True]
        ratio = ours / theirs if theirs else 0.0
        print(f"\n[results] petspark {ours:,.0f} msg/s vs python-socketio relay "
              f"{theirs:,.0f} msg/s = {ratio:.2f} (target >= 0.3: "
              f"{'met' if ratio >= 0.3 else 'MISSED'}); loadavg at end "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for proc in (server, relay):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
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
    parser.add_argument("--max-rate", action="store_true",
                        help="highest lossless rate vs a python-socketio relay (issue #19)")
    parser.add_argument("--pairs", type=int, default=100, help="--max-rate: conversations")
    parser.add_argument("--step-s", type=float, default=4.0, help="--max-rate: s per step")
    parser.add_argument("--max-total", type=int, default=15000,
                        help="--max-rate: highest offered msg/s tried")
    if len(sys.argv) == 3 and sys.argv[1] == "socketio-relay":
        run_socketio_relay(int(sys.argv[2]))
        return
    args = parser.parse_args()
    if args.conversations > 2000 or args.duration > 120:
        parser.error("bounded: at most 2000 conversations and 120 s per step")
    if not (1 <= args.pairs <= 1000 and 0 < args.step_s <= 30):
        parser.error("bounded: 1..1000 pairs, at most 30 s per step")
    with bench_postgres() as admin_dsn, bench_redis() as redis_url:
        if args.max_rate:
            asyncio.run(asyncio.wait_for(run_max_rate(args, admin_dsn, redis_url), 900))
        else:
            asyncio.run(run(args, admin_dsn, redis_url))


if __name__ == "__main__":
    main()
