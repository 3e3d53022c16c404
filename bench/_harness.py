"""Shared bench plumbing: backends, a throwaway database, server subprocesses, registration, RSS.

Backends are found or started like the tests' (``server.resources.dev_services``):
PostgreSQL from ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` (an admin DSN that may
create databases), else the standard local port, else an embedded PostgreSQL in a
temporary folder; Redis (for the benches that use it) from ``BENCH_REDIS_URL``,
else ``REDIS_URL``, else the standard local port, else a private ``redis-server``.
Each bench prints which it uses.

Everything is loopback-only and bounded: servers are started on free ports and
terminated at the end; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil

from server.resources import dev_services
from server.resources.dev_services import free_port, with_database

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["free_port", "with_database"]

T = TypeVar("T")


@contextlib.contextmanager
def bench_postgres() -> Iterator[str]:
    """An admin DSN of a reachable (maybe embedded) PostgreSQL, for the block.
    Call outside the event loop."""
    with dev_services.postgres_server(dev_services.BENCH_PG_VARS) as pg:
        print(f"bench backends: {pg.origin}", flush=True)
        yield pg.url


@contextlib.contextmanager
def bench_redis() -> Iterator[str]:
    """The URL of a reachable Redis (maybe a private redis-server), for the block."""
    with dev_services.redis_server(dev_services.BENCH_REDIS_VARS) as found:
        print(f"bench backends: {found.origin}", flush=True)
        yield found.url


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database ``petspark_bench_<random>``, dropped afterwards."""
    dsn = await dev_services.create_database(admin_dsn, prefix="petspark_bench")
    try:
        yield dsn
    finally:
        await dev_services.drop_database(admin_dsn, dsn)


def bench_env(port: int, database_url: str, data_dir: str, **extra: str) -> dict[str, str]:
    """Environment of a bench server: fast argon2, no throttling, quiet logs."""
    env = dict(os.environ)
    env.update({
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "DATA_DIR": data_dir,
        "SECRET_KEY": "bench-" + secrets.token_hex(24),
        "LOG_LEVEL": "warning",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
        "AUTH_REGISTER_PER_HOUR": "100000",
        "WS_RATE_PER_S": "1000000",
        "WS_RATE_BURST": "1000000",
        "WS_MAX_CONNECTIONS_PER_USER": "1000",
        "WS_HANDSHAKES_PER_ADDRESS": "100000",  # every bench socket comes from 127.0.0.1
        "LOST_REPORTS_PER_DAY": "1000000",
        "PETS_CREATE_PER_DAY": "1000000",
        "ACCESS_TOKEN_TTL_S": "3600",
        "DB_POOL_MAX": "20",
        "SHUTDOWN_SPREAD_S": "0",
        "SHUTDOWN_TIMEOUT_S": "2",
        "PYTHONPATH": str(ROOT),
    })
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


class ServerProcess:
    """A subprocess serving HTTP/WS on ``port``; ``rss()`` reads its resident memory."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], port: int, name: str) -> None:
        self.argv = list(argv)
        self.env = env
        self.port = port
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def launch(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT,
                                     stdout=self._log, stderr=self._log)

    async def start(self, ready_path: str = "/readyz", timeout: float = 60.0) -> None:
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
                try:
                    async with session.get(self.base + ready_path,
                                           timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log()}")
                await asyncio.sleep(0.1)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._log.close()


def petspark_server(database_url: str, data_dir: str, name: str = "petspark",
                    **extra: str) -> ServerProcess:
    port = free_port()
    env = bench_env(port, database_url, data_dir, **extra)
    return ServerProcess([sys.executable, "-m", "server"], env, port, name)


def script_server(script: str, mode: str, name: str) -> ServerProcess:
    """This bench script itself, run in a server ``mode`` (the raw aiohttp baselines)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ServerProcess([sys.executable, script, mode, str(port)], env, port, name)


@contextlib.contextmanager
def temp_dir() -> Any:
    path = tempfile.mkdtemp(prefix="petspark-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def bounded_gather(limit: int, factories: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run coroutine factories with at most ``limit`` in flight; results in order."""
    sem = asyncio.Semaphore(limit)

    async def run(f: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await f()

    return list(await asyncio.gather(*(run(f) for f in factories)))


async def register_users(base: str, count: int, concurrency: int = 16) -> list[tuple[str, str]]:
    """Register ``count`` users via ``POST /api/v1/auth/register``; (user_id, access_token)."""
    async with aiohttp.ClientSession() as session:

        async def one() -> tuple[str, str]:
            email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
            async with session.post(base + "/api/v1/auth/register", json={
                "email": email, "password": "bench password 1", "display_name": "Bench",
            }) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"register failed {resp.status}: {body}")
                return body["user"]["id"], body["access_token"]

        return await bounded_gather(concurrency, [one] * count)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> str:
    return (f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"aiohttp {aiohttp.__version__}, uvloop loop, loopback only")
