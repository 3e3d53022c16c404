"""``create_app(settings)``: every resource in a cleanup context, in dependency order.

Order: secret key → database (embedded server if needed, migrations, pool) →
Redis → broker → object storage → rate limiter → auth → realtime (event
stream, presence, hub, the broker subscription) → gateway. Shutdown runs in
reverse: sockets are closed 1001 in ``on_shutdown``, before any pool closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from server.auth.passwords import Passwords
from server.auth.service import AUTH, AuthDeps
from server.auth.sessions import SESSION_COOKIES, SessionCookies
from server.auth.sessions import middleware as session_middleware
from server.auth.tokens import AccessTokens, session_cookie_keys
from server.auth.verifier import VERIFIER, Verifier
from server.domain.lost_found.setup import lost_found_ctx
from server.gateway.setup import gateway_ctx, setup_gateway
from server.http import auth as auth_routes
from server.http import contracts, demo, files, health
from server.http import uploads as upload_routes
from server.http.middleware import METRICS, request_context
from server.http.security import cors_preflight, security_headers
from server.observability.metrics import Metrics
from server.ratelimit import RATE_LIMITER, rate_limiter_ctx
from server.realtime.broker import Broker, MemoryBroker, RedisBroker
from server.realtime.control import kick
from server.realtime.setup import realtime_ctx
from server.resources.migrations import migrate
from server.resources.postgres import create_pool, database_dsn
from server.resources.redis import create_redis
from server.resources.storage import LocalStorage, S3Storage
from server.settings import Settings, resolve_secret_key
from server.state import BACKENDS, BROKER, DB, REDIS, SECRET_KEY, SETTINGS, STORAGE

log = logging.getLogger("server")


def create_app(settings: Settings) -> web.Application:
    # The cookie storage must exist before start-up (its middleware is frozen with
    # the app); it gets its keys in auth_ctx, once SECRET_KEY is resolved.
    cookies = SessionCookies.from_settings(settings)
    app = web.Application(
        # Outermost first: errors become JSON for everything inside, preflights are
        # answered before routing, the session middleware saves cookies last.
        middlewares=[request_context, cors_preflight, session_middleware(cookies)],
        client_max_size=settings.max_request_bytes,
        handler_args={"max_field_size": 16384},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[BACKENDS] = {}
    app[SESSION_COOKIES] = cookies
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.extend(
        [
            secret_key_ctx,
            database_ctx,
            redis_ctx,
            broker_ctx,
            storage_ctx,
            rate_limiter_ctx,
            auth_ctx,
            realtime_ctx,
            lost_found_ctx,
            gateway_ctx,
            announce_ctx,
        ]
    )
    health.add_routes(app)
    auth_routes.add_routes(app)
    contracts.add_routes(app)
    setup_gateway(app)
    upload_routes.setup(app)
    if not settings.s3_bucket:
        files.add_routes(app)  # the local store's signed URLs
    demo.add_routes(app)  # GET /demo/ (development only)
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


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """Token keys, cookie keys, the verifier (HTTP and gateway) and the auth service's deps."""
    settings = app[SETTINGS]
    secret, previous = app[SECRET_KEY], settings.previous_secret_key
    tokens = AccessTokens(secret, previous, settings.access_token_ttl_s)
    cookies = app[SESSION_COOKIES]
    cookies.use_keys(session_cookie_keys(secret, previous))

    async def kick_sockets(
        *,
        session_ids: tuple[str, ...] = (),
        user_ids: tuple[str, ...] = (),
        code: int = 4003,
        reason: str = "revoked",
    ) -> None:
        await kick(app, session_ids=session_ids, user_ids=user_ids, code=code, reason=reason)

    app[AUTH] = AuthDeps(
        db=app[DB],
        settings=settings,
        passwords=Passwords.from_settings(settings),
        tokens=tokens,
        limiter=app[RATE_LIMITER],
        kick=kick_sockets,
    )
    app[VERIFIER] = Verifier(app[DB], tokens, cookies, settings.refresh_token_ttl_s)
    app[BACKENDS]["rate_limiter"] = app[RATE_LIMITER].name
    yield


async def announce_ctx(app: web.Application) -> AsyncIterator[None]:
    backends: dict[str, Any] = app[BACKENDS]
    log.info("backends in use", extra={"backends": dict(backends)})
    yield
