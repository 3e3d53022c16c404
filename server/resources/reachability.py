"""Before ``serve`` or ``migrate`` starts: can the configured backends be reached?

Each failure becomes one line that names the backend and what went wrong
(``PostgreSQL at 127.0.0.1:5432 refused the connection``), never a traceback and
never a password. Only configured backends are checked: the embedded PostgreSQL
and the in-process broker need nothing.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from urllib.parse import parse_qs, urlsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from server.settings import Settings

CONNECT_TIMEOUT_S = 5.0


class BackendUnreachable(RuntimeError):
    """``str(exc)`` is the one line to show."""


def pg_address(dsn: str) -> str:
    """``host:port`` of a PostgreSQL DSN (a Unix-socket folder shown as itself)."""
    parts = urlsplit(dsn)
    host = parts.hostname
    if not host:
        host = parse_qs(parts.query).get("host", ["localhost"])[0]
        if host.startswith("/"):
            return host
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return f"{host}:{port}"


def redis_address(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or 'localhost'}:{port}"


def _refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED:
            return True
        text = str(seen).lower()
        if "connection refused" in text or "connect call failed" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unresolved(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_postgres_failure(dsn: str, exc: BaseException) -> str:
    where = f"PostgreSQL at {pg_address(dsn)}"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {CONNECT_TIMEOUT_S:g} s"
    if _unresolved(exc):
        return f"{where}: the host name does not resolve"
    if _refused(exc):
        return f"{where} refused the connection"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"{where} refused the password of user {urlsplit(dsn).username or '(default)'!r}"
    if isinstance(exc, asyncpg.PostgresError):
        # The server's own message ('database "x" does not exist'); it never echoes a password.
        return f"{where} refused the login: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


def describe_redis_failure(url: str, exc: BaseException) -> str:
    where = f"Redis at {redis_address(url)}"
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return f"{where} refused the credentials"
    if isinstance(exc, redis.exceptions.ResponseError) and "NOAUTH" in str(exc):
        return f"{where} wants a password (none in REDIS_URL)"
    if _unresolved(exc):
        return f"{where}: the host name does not resolve"
    if _refused(exc):
        return f"{where} refused the connection"
    if isinstance(exc, (TimeoutError, redis.exceptions.TimeoutError)):
        return f"{where} did not answer within {CONNECT_TIMEOUT_S:g} s"
    return f"{where}: {type(exc).__name__}"


async def check_postgres(dsn: str) -> None:
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except ValueError:  # asyncpg's DSN parser; its message may quote the DSN, so not shown
        raise BackendUnreachable("DATABASE_URL is not a valid PostgreSQL URL") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackendUnreachable(describe_postgres_failure(dsn, exc)) from None
    await conn.close(timeout=CONNECT_TIMEOUT_S)


async def check_redis(url: str) -> None:
    try:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as exc:
        raise BackendUnreachable(f"REDIS_URL is not a Redis URL: {exc}") from None
    try:
        await asyncio.wait_for(client.ping(), timeout=CONNECT_TIMEOUT_S * 2)
    except (OSError, TimeoutError, redis.exceptions.RedisError) as exc:
        raise BackendUnreachable(describe_redis_failure(url, exc)) from None
    finally:
        await client.aclose()


async def check_backends(settings: Settings, *, redis_too: bool = True) -> None:
    """Raise ``BackendUnreachable`` for the first configured backend that does not answer."""
    if settings.database_url:
        await check_postgres(settings.database_url)
    if redis_too and settings.redis_url:
        await check_redis(settings.redis_url)
