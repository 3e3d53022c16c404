"""Upload throughput and server memory: N clients upload 8 MiB photos through POST /api/v1/uploads.

    python3 dev.py bench uploads [--clients 20] [--per-client 3] [--mib 8]

Starts ``python -m server`` as a subprocess on a free loopback port (local
storage in a temporary DATA_DIR, a database of its own on the bench's PostgreSQL
(see ``bench/_harness.py``), in-process broker), registers one user per client, then every
client uploads ``--per-client`` photos concurrently with ``client.uploads.upload``.
Prints MiB/s (request bytes over wall time, processing included) and the
server's RSS before the run, at its peak (sampled every 20 ms) and after.
The upload route streams to disk, so RSS must not grow with bytes in flight;
what it may grow by is bounded by UPLOAD_PROCESS_CONCURRENCY decoded images.
Loopback only; bounded by --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._harness import bench_postgres  # noqa: E402
from client.uploads import upload  # noqa: E402
from server.resources import dev_services as services  # noqa: E402

MiB = 1024 * 1024


def photo(target_bytes: int) -> bytes:
    """A camera-like JPEG of about ``target_bytes``: noise does not compress."""
    side = int((target_bytes / 1.17) ** 0.5)
    width, height = int(side * 1.33), int(side / 1.33)
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The server under test, in its own process (so its RSS is its own)."""
    return subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env)


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                async with http.get(base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server not ready in time")


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(0.02)


async def run(args: argparse.Namespace, admin_dsn: str) -> None:
    data = photo(args.mib * MiB)
    print(f"photo: {len(data) / MiB:.2f} MiB JPEG; {args.clients} clients x "
          f"{args.per_client} uploads")
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="petspark-bench-") as data_dir:
        dsn = await services.create_database(admin_dsn, prefix="petspark_bench")
        env = {**os.environ, "DATABASE_URL": dsn, "DATA_DIR": data_dir, "PORT": str(port),
               "SECRET_KEY": "bench-" + "k" * 40, "LOG_LEVEL": "warning",
               "UPLOAD_PER_HOUR": "100000", "UPLOAD_BYTES_PER_DAY": str(1 << 40),
               "AUTH_REGISTER_PER_HOUR": "100000", "PASSWORD_HASH_TIME_COST": "1",
               "PASSWORD_HASH_MEMORY_KIB": "8"}
        for name in ("REDIS_URL", "S3_BUCKET"):
            env.pop(name, None)
        proc = start_server(env)
        try:
            await wait_ready(base, proc)
            await measure(args, base, proc.pid, data)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            await services.drop_database(admin_dsn, dsn)


async def measure(args: argparse.Namespace, base: str, pid: int, data: bytes) -> None:
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        tokens = []
        for i in range(args.clients):
            async with http.post(base + "/api/v1/auth/register", json={
                "email": f"bench{i}-{os.getpid()}@example.com", "password": "bench password 1",
                "display_name": f"bench {i}",
            }) as resp:
                assert resp.status == 201, await resp.text()
                tokens.append((await resp.json())["access_token"])
        # warm-up: one upload, so lazy imports and pools are in RSS "before"
        await upload(http, base, tokens[0], data, "pet_photo")
        await asyncio.sleep(0.5)
        server = psutil.Process(pid)
        before = server.memory_info().rss
        peak = [before]
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, stop, peak))

        async def one_client(token: str) -> int:
            for _ in range(args.per_client):
                await upload(http, base, token, data, "pet_photo")
            return args.per_client

        started = time.perf_counter()
        done = await asyncio.wait_for(
            asyncio.gather(*(one_client(t) for t in tokens)), args.timeout
        )
        elapsed = time.perf_counter() - started
        stop.set()
        await sampler
        await asyncio.sleep(1.0)
        after = server.memory_info().rss
        total = sum(done)
        mib = total * len(data) / MiB
        print(f"uploads: {total} in {elapsed:.2f} s = {total / elapsed:.1f} uploads/s, "
              f"{mib / elapsed:.1f} MiB/s ({mib:.0f} MiB)")
        print(f"server RSS: before {before / MiB:.1f} MiB, peak {peak[0] / MiB:.1f} MiB, "
              f"after {after / MiB:.1f} MiB (bytes in flight at once: up to "
              f"{args.clients * len(data) / MiB:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=3)
    parser.add_argument("--mib", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with bench_postgres() as admin_dsn:
        asyncio.run(run(args, admin_dsn))


if __name__ == "__main__":
    main()
