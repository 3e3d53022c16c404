"""``create_app(settings)``: every resource in a cleanup context, in dependency order.

Order: secret key → database (embedded server if needed, migrations, pool) →
Redis → broker → object storage → (features). Shutdown runs in reverse: sockets
are closed 1001 in ``on_shutdown``, before any pool closes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.http import files, health
from server.http.middleware import METRICS, request_context
from server.observability.metrics import Metrics
from server.realtime.broker import Broker, MemoryBroker, RedisBroker
from server.resources.migrations import migrate
from server.resources.postgres import create_pool, database_dsn
from server.resources.redis import create_redis
from server.resources.storage import LocalStorage, S3Storage
from server.settings import Settings, resolve_secret_key
from server.state import BACKENDS, BROKER, DB, REDIS, SECRET_KEY, SETTINGS, STORAGE

log = logging.getLogger("server")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_context],
        client_max_size=settings.max_request_bytes,
        handler_args={"max_field_size": 16384},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[BACKENDS] = {}
    app.cleanup_ctx.extend(
        [secret_key_ctx, database_ctx, redis_ctx, broker_ctx, storage_ctx, announce_ctx]
    )
    health.add_routes(app)
    if not settings.s3_bucket:
        files.add_routes(app)  # the local store's signed URLs
    return app


async def secret_key_ctx(app: web.Application) -> AsyncIterator[None]:
    key, generated = resolve_secret_key(app[SETTINGS])
    if generated:
        log.warning(
            "SECRET_KEY is unset: using a generated development key from DATA_DIR "
            "(set SECRET_KEY in production)"
        )
    app[SECRET_KEY] = key
    yield


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with database_dsn(settings) as (dsn, kind):
        pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        try:
            if settings.migrate_on_start:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
                if applied:
                    log.info("migrations applied", extra={"applied": applied})
            app[DB] = pool
            app[BACKENDS]["database"] = kind
            yield
        finally:
            await pool.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    if not url:
        yield
        return
    client = create_redis(url)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    broker: Broker
    if REDIS in app:
        broker = RedisBroker(app[REDIS], channel=f"{settings.redis_prefix}bus")
    else:
        broker = MemoryBroker()
    app[BROKER] = broker
    app[BACKENDS]["broker"] = broker.name
    try:
        yield
    finally:
        await broker.close()


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.s3_bucket:
        from aiobotocore.session import get_session
        from botocore.config import Config

        session = get_session()
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
        )
        async with session.create_client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        ) as client:
            app[STORAGE] = S3Storage(client, settings.s3_bucket)
            app[BACKENDS]["storage"] = f"s3 ({settings.s3_bucket})"
            yield
        return
    root = settings.data_path / "uploads"
    app[STORAGE] = LocalStorage(
        root, LocalStorage.derive_key(app[SECRET_KEY]), url_base=settings.public_url
    )
    app[BACKENDS]["storage"] = f"local ({root})"
    yield


async def announce_ctx(app: web.Application) -> AsyncIterator[None]:
    log.info("backends in use", extra={"backends": dict(app[BACKENDS])})
    yield
