"""Shared fixtures: real PostgreSQL and Redis, a fresh database per run, app factories."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import HandlerOverrides, PushFactory, create_app
from server.domain.uploads.moderation import Moderator
from server.resources.migrations import migrate
from server.settings import Settings
from tests.support import services

TEST_SECRET = "test-secret-key-" + "x" * 32
TEST_ORIGIN = "http://localhost:3000"


def _announce(config: pytest.Config, line: str) -> None:
    """Say which backend the run uses, even under -q and output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(f"tests use {line}")


@pytest.fixture(scope="session")
def pg_admin_dsn(pytestconfig: pytest.Config) -> Iterator[str]:
    with services.postgres_server() as pg:
        _announce(pytestconfig, pg.origin)
        yield pg.url


@pytest.fixture(scope="session")
def database_url(pg_admin_dsn: str) -> Iterator[str]:
    """A database of this run's own, migrated once, dropped at the end."""

    async def setup() -> str:
        dsn = await services.create_database(pg_admin_dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return dsn

    dsn = asyncio.run(setup())
    yield dsn
    asyncio.run(services.drop_database(pg_admin_dsn, dsn))


@pytest.fixture
async def fresh_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """An empty database for tests that need a schema-less start (migrations)."""
    dsn = await services.create_database(pg_admin_dsn, prefix="petspark_fresh")
    yield dsn
    await services.drop_database(pg_admin_dsn, dsn)


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    with services.redis_server() as found:
        _announce(pytestconfig, found.origin)
        yield found.url


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"pstest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    services.delete_prefix(redis_url, prefix)


@pytest.fixture
async def clean_db(database_url: str) -> AsyncIterator[None]:
    """Empty every table (but the migration record) before the test."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            # The audit log refuses TRUNCATE by trigger (append-only); a test reset skips
            # triggers for this one statement (we connect as a superuser).
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    yield


@pytest.fixture
def make_settings(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for one app under test. ``redis=False`` gives the single-node memory broker."""

    def factory(*, redis: bool = True, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": redis_url if redis else None,
            "redis_prefix": redis_prefix,
            "data_dir": str(tmp_path / "data"),
            "secret_key": TEST_SECRET,
            "allowed_origins": (TEST_ORIGIN,),
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 8,
            # Every test connects from 127.0.0.1 and the Redis prefix lasts the whole run:
            # the auth throttles would trip across unrelated tests. Throttling tests set
            # small limits explicitly.
            "auth_register_per_hour": 100_000,
            "auth_login_max_failures": 100_000,
            "auth_login_address_max_failures": 100_000,
            "auth_login_email_max_failures": 100_000,
            "db_pool_min": 1,
            "db_pool_max": 10,
            "shutdown_spread_s": 0.0,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


AppClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def app_client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clean_db: None
) -> AppClient:
    """Start an app (a node) with Settings overrides; returns its HTTP/WS test client.
    Several calls in one test are several nodes on the same database and Redis.
    ``handlers=``, ``moderator=`` and ``push_providers=`` go to ``create_app`` (test seams)."""

    async def factory(*, handlers: HandlerOverrides | None = None,
                      moderator: Moderator | None = None,
                      push_providers: PushFactory | None = None,
                      **overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), handlers=handlers, moderator=moderator,
                         push_providers=push_providers)
        client: TestClient = await aiohttp_client(app)
        return client

    return factory
