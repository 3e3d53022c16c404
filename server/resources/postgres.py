"""The PostgreSQL connection pool (and the embedded server when DATABASE_URL is unset)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from server.resources.embedded_postgres import EmbeddedPostgres
from server.settings import Settings

log = logging.getLogger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects and go in from them, via msgspec.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


async def _reset_after_use(conn: asyncpg.Connection) -> None:
    """Run when a connection goes back to the pool, instead of asyncpg's reset query
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``): that is a round
    trip on every release — as long as a whole ``chat.send`` — to undo session state this
    server never leaves behind (no ``SET``, ``LISTEN``, cursor or advisory lock outlives
    its transaction; the migration lock is released by ``migrate`` itself). A transaction
    left open (a command cancelled mid-way) is rolled back by asyncpg before this runs."""


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no types
    """An asyncpg pool whose ``acquire`` (and so ``pool.fetch`` & co.) waits at most
    ``acquire_timeout`` for a connection: with PostgreSQL stalled or the pool exhausted,
    a command fails fast (``unavailable``) instead of queueing for ever."""

    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20,
                      command_timeout_s: float = 30.0,
                      connect_timeout_s: float | None = None) -> asyncpg.Pool:
    """The server's pool: jsonb codec; each query bounded by ``command_timeout_s``; opening
    a connection, and waiting for a pooled one, by ``connect_timeout_s`` (None: no bound
    on waiting, 60 s on connecting)."""
    connect: dict[str, Any] = {}
    if connect_timeout_s is not None:
        connect["timeout"] = connect_timeout_s
    pool = BoundedPool(
        dsn,
        acquire_timeout=connect_timeout_s,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init=_init_connection,
        reset=_reset_after_use,
        command_timeout=command_timeout_s,
        **connect,
    )
    await pool
    return pool


@asynccontextmanager
async def database_dsn(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Yield (dsn, kind): the configured one, or an embedded server started for the block."""
    if settings.database_url:
        yield settings.database_url, "postgresql"
        return
    embedded = EmbeddedPostgres(settings.data_path)
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield dsn, f"embedded-postgresql ({embedded.pgdata})"
    finally:
        await asyncio.to_thread(embedded.stop)


async def ping(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1", timeout=2)


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """Yield (pool, what it is): the database (embedded if needed), migrated when
    ``MIGRATE_ON_START``; the pool is closed at the end, bounded by SHUTDOWN_TIMEOUT_S."""
    from server.resources.migrations import migrate

    async with database_dsn(settings) as (dsn, kind):
        pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
                                 command_timeout_s=settings.db_command_timeout_s,
                                 connect_timeout_s=settings.db_connect_timeout_s)
        try:
            if settings.migrate_on_start:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
                if applied:
                    log.info("migrations applied", extra={"applied": applied})
            yield pool, kind
        finally:
            await close_pool(pool, settings.shutdown_timeout_s)


async def close_pool(pool: asyncpg.Pool, timeout_s: float) -> None:
    """Close gracefully, but bounded: a connection still held by a stuck task must not
    keep the process from exiting (``pool.close()`` waits for every release)."""
    try:
        await asyncio.wait_for(pool.close(), timeout=timeout_s)
    except TimeoutError:
        log.warning("database pool did not close in time; terminating its connections",
                    extra={"timeout_s": timeout_s})
        pool.terminate()
