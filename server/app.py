"""The composition root: ``create_app(settings)`` builds every resource, the dependency
bundle, every area's service and the command table — in dependency order, in one place.

Start-up order (``runtime_ctx``): secret key → database (embedded if needed, migrated)
→ Redis → object storage → rate limiter → the realtime node (broker subscription, hub,
event stream, presence) → ``Deps`` → auth and accounts (with the mailer) → every area's
service bound into the command table (push with its providers) → background workers →
the gateway. Shutdown: ``on_shutdown`` closes every socket
1001 first (``server.gateway.routes``); then everything stops in reverse order.

Adding a domain area: write ``store.py``, ``service.py`` and ``handlers.py`` under
``server/domain/<area>/`` and bind it below with one line (``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import redis.asyncio as aioredis
from aiohttp import web

from protocol.base import Command
from server.auth.account import AccountService
from server.auth.devices import DeviceTokens
from server.auth.passwords import Passwords
from server.auth.service import AuthService
from server.auth.sessions import SessionCookies
from server.auth.sessions import middleware as session_middleware
from server.auth.tokens import AccessTokens, session_cookie_keys
from server.auth.verifier import Verifier
from server.commands import CommandTable, Handler
from server.deps import Deps
from server.domain.admin import handlers as admin
from server.domain.admin.guard import require_admin
from server.domain.admin.service import AdminService
from server.domain.adoption import handlers as adoption
from server.domain.adoption.service import AdoptionService
from server.domain.chat import handlers as chat
from server.domain.chat.service import ChatService
from server.domain.community import handlers as community
from server.domain.community.service import CommunityService
from server.domain.flags import handlers as flags
from server.domain.flags.service import FlagService
from server.domain.live import handlers as live_streaming
from server.domain.live.service import LiveService
from server.domain.lost_found import handlers as lost_found
from server.domain.lost_found.service import LostFoundService
from server.domain.matching import handlers as matching
from server.domain.matching.service import MatchingService
from server.domain.notifications import handlers as notifications
from server.domain.notifications.service import NotificationService
from server.domain.pets import handlers as pets
from server.domain.pets.service import PetService
from server.domain.presence import handlers as presence
from server.domain.presence.service import PresenceService
from server.domain.push import handlers as push
from server.domain.push.service import PushService
from server.domain.safety import handlers as safety
from server.domain.safety.service import SafetyService
from server.domain.uploads.moderation import Moderator, NoModerator
from server.domain.uploads.service import UploadService
from server.gateway import routes as gateway_routes
from server.gateway.gateway import Gateway
from server.http import account as account_routes
from server.http import auth as auth_routes
from server.http import contracts, demo, files, health
from server.http import live as live_routes
from server.http import uploads as upload_routes
from server.http.middleware import request_context
from server.http.security import cors_preflight, hide_versions, security_headers
from server.mail.mailer import build_mailer
from server.mail.messages import AccountMails
from server.observability.metrics import Metrics
from server.push.factory import PushProviders, build_push_providers
from server.realtime.broker import Broker, MemoryBroker, RedisBroker, new_node_id
from server.realtime.node import Node
from server.realtime.presence import MemoryPresence, Presence, RedisPresence
from server.realtime.rooms import MemoryRoomPresence, RedisRoomPresence, RoomPresence
from server.realtime.routing import MemoryRoutes, RedisRoutes, Routes
from server.realtime.sharded_broker import ShardedRedisBroker
from server.resources.outages import DATABASE, REDIS, Outages, Probe
from server.resources.postgres import open_database
from server.resources.postgres import ping as ping_db
from server.resources.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from server.resources.redis import create_redis, create_redis_cluster
from server.resources.storage import open_storage
from server.settings import Settings, resolve_secret_key
from server.state import BACKENDS, METRICS, RUNTIME, SESSION_COOKIES, SETTINGS, Runtime

log = logging.getLogger("server")

HandlerOverrides = Mapping[type[Command], Handler | None]
PushFactory = Callable[[Settings, Metrics], PushProviders]


def create_app(
    settings: Settings,
    *,
    moderator: Moderator | None = None,
    handlers: HandlerOverrides | None = None,
    push_providers: PushFactory | None = None,
) -> web.Application:
    """The app for ``settings``. ``moderator`` is the automatic upload check (default: none,
    a human decides); ``handlers`` replaces (or, with None, removes) command handlers —
    for tests and embedders; ``push_providers(settings, metrics)`` builds the push providers
    instead of ``build_push_providers`` (tests that trust a test CA; the app closes them)."""
    # The cookie storage must exist before start-up (its middleware is frozen with
    # the app); it gets its keys in runtime_ctx, once SECRET_KEY is resolved.
    cookies = SessionCookies.from_settings(settings)
    app = web.Application(
        # Outermost first: errors become JSON for everything inside, preflights are
        # answered before routing, the session middleware saves cookies last.
        middlewares=[request_context, cors_preflight, session_middleware(cookies)],
        client_max_size=settings.max_request_bytes,
        # aiohttp's keep-alive timer starts when a connection opens and after each
        # response, and incoming bytes do not extend it: it bounds how long a client may
        # take to deliver a complete request head (slowloris), idle time included.
        # After an answer to an unread body (408, 413), aiohttp reads on for lingering_time
        # so the client sees the answer: no longer than one body timeout.
        handler_args={"max_field_size": 16384,
                      "keepalive_timeout": settings.http_header_timeout_s,
                      "lingering_time": min(10.0, settings.http_body_timeout_s)},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[BACKENDS] = {}
    app[SESSION_COOKIES] = cookies
    app.on_response_prepare.append(security_headers)
    hide_versions()
    app.cleanup_ctx.append(_runtime_ctx(moderator or NoModerator(), handlers or {},
                                        push_providers))
    health.add_routes(app)
    auth_routes.add_routes(app)
    account_routes.add_routes(app)
    contracts.add_routes(app)
    upload_routes.add_routes(app)
    live_routes.add_routes(app)
    gateway_routes.add_routes(app)
    if not settings.s3_bucket:
        files.add_routes(app)  # the local store's signed URLs
    demo.add_routes(app)  # GET /demo/ (development only)
    return app


def _runtime_ctx(moderator: Moderator, overrides: HandlerOverrides,
                 push_providers: PushFactory | None = None,
                 ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app[RUNTIME] = await start_runtime(app, stack, moderator, overrides,
                                               push_providers)
            backends: dict[str, str] = app[BACKENDS]
            log.info("backends in use", extra={"backends": backends})
            yield
    return runtime_ctx


async def start_runtime(app: web.Application, stack: contextlib.AsyncExitStack,
                        moderator: Moderator, overrides: HandlerOverrides,
                        push_providers: PushFactory | None = None) -> Runtime:
    """Start everything in dependency order; ``stack`` stops it in reverse."""
    settings, metrics, backends = app[SETTINGS], app[METRICS], app[BACKENDS]
    secret = _secret_key(settings)

    # --- resources ---------------------------------------------------------------------
    db, backends["database"] = await stack.enter_async_context(open_database(settings))
    redis = await stack.enter_async_context(_redis(settings))
    storage, backends["storage"] = await stack.enter_async_context(
        open_storage(settings, secret))
    # --- outages: one line per backend outage, `unavailable` to whoever hits one ----------
    probes: dict[str, Probe] = {DATABASE: lambda: ping_db(db)}
    if redis is not None:
        probes[REDIS] = redis.ping
    outages = Outages(metrics, probes)
    limiter: RateLimiter = (RedisRateLimiter(redis, settings.redis_prefix, outages) if redis
                            else MemoryRateLimiter())
    backends["rate_limiter"] = limiter.name

    # --- the realtime node, and the bundle every service is built from ------------------
    node_id = new_node_id()
    node = Node(db=db, broker=await stack.enter_async_context(_broker(settings, redis, node_id)),
                presence=_presence(settings, redis), settings=settings, metrics=metrics,
                rooms=_rooms(settings, redis), outages=outages,
                routes=_routes(settings, redis, node_id))
    await _started(stack, node.start, node.stop)
    backends["broker"] = node.broker.name
    deps = Deps(settings=settings, db=db, node=node, storage=storage, limiter=limiter,
                metrics=metrics, redis=redis)

    # --- auth ------------------------------------------------------------------------------
    tokens = AccessTokens(secret, settings.previous_secret_key, settings.access_token_ttl_s)
    cookies = app[SESSION_COOKIES]
    cookies.use_keys(session_cookie_keys(secret, settings.previous_secret_key))
    verifier = Verifier(db, tokens, cookies, settings.refresh_token_ttl_s)
    passwords = Passwords.from_settings(settings)
    devices = DeviceTokens(secret, settings.previous_secret_key, settings.auth_device_ttl_s)
    auth = AuthService(deps, passwords=passwords, tokens=tokens, devices=devices)
    mailer = build_mailer(settings, metrics)
    backends["mail"] = mailer.transport
    account = AccountService(deps, passwords=passwords, mailer=mailer,
                             mails=AccountMails.from_settings(settings))
    await _started(stack, account.start, account.stop)

    # --- the domain: every area's service, bound into the command table -------------------
    commands = CommandTable()
    commands.bind(PetService(deps), pets.HANDLERS)
    commands.bind(MatchingService(deps), matching.HANDLERS)
    commands.bind(ChatService(deps), chat.HANDLERS)
    commands.bind(NotificationService(deps), notifications.HANDLERS)
    presence_service = commands.bind(PresenceService(deps), presence.HANDLERS)
    lost = commands.bind(LostFoundService(deps), lost_found.HANDLERS)
    commands.bind(AdoptionService(deps), adoption.HANDLERS)
    commands.bind(CommunityService(deps), community.HANDLERS)
    commands.bind(SafetyService(deps), safety.HANDLERS)
    providers = (push_providers or build_push_providers)(settings, metrics)
    stack.push_async_callback(providers.close)
    backends["push"] = ", ".join(f"{p}: {n}" for p, n in providers.names.items())
    push_service = commands.bind(PushService(deps, providers), push.HANDLERS)
    live = commands.bind(LiveService(deps), live_streaming.HANDLERS)
    uploads = UploadService(deps, moderator)
    # Admin: every admin.* handler behind the one role guard (re-reads the stored role).
    admin_only = require_admin(db)
    commands.bind(AdminService(deps, accounts=auth, live=live), admin.HANDLERS,
                  guard=admin_only)
    feature_flags = commands.bind(FlagService(deps), flags.HANDLERS)
    commands.bind(feature_flags, flags.ADMIN_HANDLERS, guard=admin_only)
    commands.override(overrides)

    # --- background workers, then the gateway ---------------------------------------------
    await _started(stack, lost.start, lost.stop)
    await _started(stack, uploads.start, uploads.stop)
    await _started(stack, feature_flags.start, feature_flags.stop)
    await _started(stack, push_service.start, push_service.stop)
    await _started(stack, live.start, live.stop)
    gateway = Gateway(settings=settings, metrics=metrics, verifier=verifier, cookies=cookies,
                      node=node, commands=commands,
                      on_presence=_both(presence_service.announce, live.host_presence),
                      outages=outages)
    gateway.start()
    stack.push_async_callback(gateway.sweeper.stop)  # shutdown() stopped it already
    return Runtime(deps=deps, verifier=verifier, auth=auth, account=account, uploads=uploads,
                   commands=commands, gateway=gateway)


async def _started(stack: contextlib.AsyncExitStack, start: Callable[[], Awaitable[None]],
                   stop: Callable[[], Awaitable[None]]) -> None:
    await start()
    stack.push_async_callback(stop)


def _both(*listeners: Callable[[str, bool], Awaitable[None]]
          ) -> Callable[[str, bool], Awaitable[None]]:
    """One presence listener calling each of ``listeners`` (a failure does not stop the
    others; the gateway logs it)."""
    async def listener(user_id: str, online: bool) -> None:
        results = await asyncio.gather(*(f(user_id, online) for f in listeners),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return listener


def _secret_key(settings: Settings) -> str:
    key, generated = resolve_secret_key(settings)
    if generated:
        log.warning(
            "SECRET_KEY is unset: using a generated development key from DATA_DIR "
            "(set SECRET_KEY in production)"
        )
    return key


@contextlib.asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[aioredis.Redis | None]:
    """The Redis client when REDIS_URL is set (else None: single node, in-process)."""
    if not settings.redis_url:
        yield None
        return
    client = create_redis(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _broker(settings: Settings, redis: aioredis.Redis | None, node_id: str
                  ) -> AsyncIterator[Broker]:
    """REDIS_CLUSTER_NODES: sharded pub/sub on the cluster; else pub/sub on REDIS_URL."""
    if redis is None:
        yield MemoryBroker(node_id)
        return
    channel = f"{settings.redis_prefix}bus"
    if settings.redis_cluster_nodes is None:
        yield RedisBroker(redis, channel=channel, node_id=node_id,
                          start_timeout_s=settings.broker_start_timeout_s)
        return
    cluster = create_redis_cluster(settings.redis_cluster_nodes)
    try:
        yield ShardedRedisBroker(cluster, channel=channel, node_id=node_id,
                                 start_timeout_s=settings.broker_start_timeout_s)
    finally:
        await cluster.aclose()


def _routes(settings: Settings, redis: aioredis.Redis | None, node_id: str) -> Routes:
    if redis is None:
        return MemoryRoutes(node_id)
    return RedisRoutes(redis, settings.redis_prefix, ttl_s=max(2 * settings.heartbeat_s, 1.0))


def _presence(settings: Settings, redis: aioredis.Redis | None) -> Presence:
    if redis is None:
        return MemoryPresence()
    return RedisPresence(redis, settings.redis_prefix, ttl_s=max(2 * settings.heartbeat_s, 1.0))


def _rooms(settings: Settings, redis: aioredis.Redis | None) -> RoomPresence:
    if redis is None:
        return MemoryRoomPresence()
    return RedisRoomPresence(redis, settings.redis_prefix,
                             ttl_s=max(2 * settings.heartbeat_s, 1.0))
