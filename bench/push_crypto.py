"""Issue #14 (part 1): what Web Push encryption costs, and where it should run.

    .venv/bin/python bench/push_crypto.py          # ~20 s, prints figures and ratios

1. CPU per push: one aes128gcm encryption (pywebpush's ``WebPusher.encode``) and one
   VAPID ES256 signature, in a tight loop.
2. Event-loop lag (a 1 ms probe timer's overshoot, p50/p99/max) while 3,000 pushes
   are encrypted 50 at a time — on the loop itself (the baseline) vs in the
   provider's one dedicated thread, fed one job at a time — and the throughput of each.
3. ``WebPushProvider.send`` end to end to a loopback endpoint in a subprocess that
   answers 201 without decrypting: pushes/s and loop lag in this process.

Loopback only; every loop is bounded in count.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import WebPusher

from bench._harness import free_port
from server.push.provider import PushDevice, PushPayload, WebPushKeys, WebPushSubscription
from server.push.vapid import generate_key, load_vapid_key
from server.push.webpush import WebPushProvider

PAYLOAD = PushPayload(kind="chat.message", title="Biscuit", body="Walk at six? Bring the ball",
                      data={"conversation_id": "4f1c2a9e-1d2b-4c61-9b0e-5d7c1a2b3c4d"},
                      unread_count=3, collapse_key="chat:4f1c2a9e")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subscription(endpoint: str) -> WebPushSubscription:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    return WebPushSubscription(endpoint=endpoint,
                               keys=WebPushKeys(p256dh=_b64(public), auth=_b64(os.urandom(16))))


def cpu_costs(n: int = 2000) -> tuple[float, float]:
    sub = subscription("https://push.example.com/x")
    info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.keys.p256dh,
                                               "auth": sub.keys.auth}}
    body = PAYLOAD.to_json()
    start = time.perf_counter()
    for _ in range(n):
        WebPusher(info).encode(body, "aes128gcm")
    encrypt = (time.perf_counter() - start) / n
    key = load_vapid_key(generate_key()[0])
    start = time.perf_counter()
    for i in range(n):
        jwt.encode({"aud": "https://push.example.com", "exp": 2_000_000_000 + i,
                    "sub": "mailto:a@b.example"}, key, algorithm="ES256")
    sign = (time.perf_counter() - start) / n
    return encrypt, sign


async def with_lag_probe(work: Callable[[], Awaitable[int]]) -> tuple[float, list[float]]:
    """Run ``work`` while a 1 ms timer measures how late the loop wakes it."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - t - 0.001)

    task = asyncio.create_task(probe())
    start = time.perf_counter()
    count = await work()
    elapsed = time.perf_counter() - start
    done.set()
    await task
    return count / elapsed, sorted(lags)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else 0.0


async def encrypt_batches(on_loop: bool, n: int = 3000, concurrency: int = 50) -> int:
    sub = subscription("https://push.example.com/x")
    info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.keys.p256dh,
                                               "auth": sub.keys.auth}}
    body = PAYLOAD.to_json()
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    gate = asyncio.Semaphore(1)  # as the provider does: one job in the thread at a time

    async def one() -> None:
        async with slots:
            if on_loop:
                WebPusher(info).encode(body, "aes128gcm")
                await asyncio.sleep(0)  # where a real send awaits the network
            else:
                async with gate:
                    await loop.run_in_executor(
                        executor, WebPusher(info).encode, body, "aes128gcm")

    await asyncio.gather(*(one() for _ in range(n)))
    executor.shutdown()
    return n


RECEIVER = """
import asyncio, sys
from aiohttp import web
async def push(request):
    await request.read()
    return web.Response(status=201)
app = web.Application()
app.router.add_post("/push/{id}", push)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def provider_end_to_end(n: int = 3000, concurrency: int = 50) -> tuple[float, list[float]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(port))
    provider = WebPushProvider(generate_key()[0], "mailto:bench@petspark.example",
                               allow_private=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        devices = [PushDevice(id=f"d{i}", platform="webpush",
                              subscription=subscription(f"http://127.0.0.1:{port}/push/{i}"))
                   for i in range(200)]
        slots = asyncio.Semaphore(concurrency)
        sent = 0

        async def one(i: int) -> None:
            nonlocal sent
            async with slots:
                result = await provider.send(devices[i % len(devices)], PAYLOAD)
                sent += result.outcome == "sent"

        async def work() -> int:
            await asyncio.gather(*(one(i) for i in range(n)))
            return sent

        return await with_lag_probe(work)
    finally:
        await provider.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)


async def main() -> None:
    encrypt, sign = cpu_costs()
    print(f"1. CPU per push: aes128gcm encryption {encrypt * 1e6:.0f} µs, "
          f"VAPID signature {sign * 1e6:.0f} µs (signed once per push service per 11 h)")
    rate_loop, lag_loop = await with_lag_probe(lambda: encrypt_batches(on_loop=True))
    rate_thread, lag_thread = await with_lag_probe(lambda: encrypt_batches(on_loop=False))
    print("2. 3,000 encryptions, 50 at a time:")
    print(f"   on the loop (baseline): {rate_loop:7.0f}/s  loop lag p50 {pct(lag_loop, .5):.2f} "
          f"ms, p99 {pct(lag_loop, .99):.2f} ms, max {pct(lag_loop, 1):.2f} ms")
    print(f"   one worker thread:      {rate_thread:7.0f}/s  loop lag p50 "
          f"{pct(lag_thread, .5):.2f} ms, p99 {pct(lag_thread, .99):.2f} ms, "
          f"max {pct(lag_thread, 1):.2f} ms")
    lag_ratio = pct(lag_thread, .99) / max(pct(lag_loop, .99), 1e-9)
    print(f"   ratio: p99 lag thread/loop {lag_ratio:.2f}, "
          f"throughput thread/loop {rate_thread / rate_loop:.2f}")
    rate, lags = await provider_end_to_end()
    print(f"3. WebPushProvider.send to a loopback endpoint (50 in flight): {rate:.0f} pushes/s, "
          f"loop lag p50 {pct(lags, .5):.2f} ms, p99 {pct(lags, .99):.2f} ms")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
