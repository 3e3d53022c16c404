"""``python -m server [serve|migrate|create-admin EMAIL]`` — ``serve`` is the default;
``--help`` lists the main variables (generated from ``server.settings.Settings``).
``create-admin EMAIL`` makes an existing account an admin (the first admin; see
``server.domain.admin.bootstrap``).

Before anything starts, a pre-flight check turns the usual first-run mistakes into
one line and exit status 1 (no traceback): migrations missing from the
installation, ``DATABASE_URL`` unset without the embedded extra, a configured
PostgreSQL or Redis that refuses the connection. Once the port is bound, one line
says where the server listens and which backends it uses.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.settings import Settings, SettingsError, load_settings, settings_fields

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("server")

# The variables `--help` shows (defaults and meanings come from Settings); every
# variable is in config/example.env.
HELP_VARIABLES = (
    "HOST", "PORT", "ENVIRONMENT", "LOG_LEVEL", "DATA_DIR", "DATABASE_URL", "REDIS_URL",
    "S3_BUCKET", "S3_ENDPOINT_URL", "PUBLIC_URL", "SECRET_KEY", "ALLOWED_ORIGINS",
    "MIGRATE_ON_START", "DB_POOL_MAX", "TRUST_FORWARDED_FOR",
)


class StartupError(RuntimeError):
    """``str(exc)`` is the one line to show."""


def _shown_default(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, tuple):
        return ",".join(default) or "empty"
    if default == "":
        return "empty"
    return str(default)


def variables_help() -> str:
    """The main environment variables with their defaults and meanings, from Settings."""
    fields = {name: (default, text) for name, default, text in settings_fields()}
    lines = textwrap.wrap(
        "The server reads its configuration from the environment only (no .env file). "
        "The main variables follow; config/example.env in the repository lists all "
        f"{len(fields)}.", width=88)
    lines.append("")
    for name in HELP_VARIABLES:
        default, text = fields[name]
        lines.append(f"  {name} (default: {_shown_default(default)})")
        lines.extend(textwrap.wrap(text, width=88, initial_indent="      ",
                                   subsequent_indent="      ", break_on_hyphens=False))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="PetSpark realtime server.",
        epilog=variables_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "migrate", "create-admin"],
        help="serve (default): run the server; migrate: apply pending migrations and exit; "
             "create-admin EMAIL: make that existing account an admin",
    )
    parser.add_argument("email", nargs="?", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.command == "create-admin") != (args.email is not None):
        parser.error("create-admin takes one EMAIL (and only create-admin takes one)")
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from server.observability.logging import configure_logging

    configure_logging(settings.log_level)
    verb = {"migrate": "cannot migrate", "create-admin": "cannot create an admin"}.get(
        args.command, "cannot start")
    try:
        preflight(settings, redis=args.command == "serve")
    except StartupError as exc:
        log.error(f"{verb}: {exc}")
        return 1
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "create-admin":
        return asyncio.run(_create_admin(settings, args.email))
    return _serve(settings)


def preflight(settings: Settings, *, redis: bool = True) -> None:
    """Raise ``StartupError`` (one line) for what would otherwise fail later, or worse,
    start and answer 500: no migrations shipped, no database at all, a backend that
    refuses the connection."""
    from server.resources import embedded_postgres
    from server.resources.migrations import MigrationError, discover
    from server.resources.reachability import BackendUnreachable, check_backends

    try:
        discover()
    except MigrationError as exc:
        raise StartupError(str(exc)) from None
    if not settings.database_url and not embedded_postgres.is_installed():
        raise StartupError(embedded_postgres.NOT_INSTALLED)
    try:
        asyncio.run(check_backends(settings, redis_too=redis))
    except BackendUnreachable as exc:
        raise StartupError(str(exc)) from None


async def _migrate(settings: Settings) -> int:
    from server.resources.embedded_postgres import EmbeddedPostgresError
    from server.resources.migrations import MigrationError, migrate
    from server.resources.postgres import create_pool, database_dsn

    try:
        async with database_dsn(settings) as (dsn, kind):
            pool = await create_pool(dsn, min_size=1, max_size=1)
            try:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
            finally:
                await pool.close()
    except (MigrationError, EmbeddedPostgresError) as exc:
        log.error("cannot migrate: %s", exc)
        return 1
    log.info("migrations done", extra={"database": kind, "applied": applied})
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


async def _create_admin(settings: Settings, email: str) -> int:
    from server.domain.admin.bootstrap import BootstrapError, create_admin
    from server.resources.embedded_postgres import EmbeddedPostgresError
    from server.resources.postgres import create_pool, database_dsn

    try:
        async with database_dsn(settings) as (dsn, _kind):
            pool = await create_pool(dsn, min_size=1, max_size=1)
            try:
                line = await create_admin(pool, email)
            finally:
                await pool.close()
    except (BootstrapError, EmbeddedPostgresError) as exc:
        print(f"create-admin: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0


def describe_backends(settings: Settings) -> str:
    """``embedded PostgreSQL at …, in-process broker, local storage in …``: what a
    person needs to know about where the data goes."""
    from server.resources.reachability import pg_address, redis_address

    if settings.database_url:
        database = f"PostgreSQL at {pg_address(settings.database_url)}"
    else:
        database = f"embedded PostgreSQL at {settings.data_path / 'postgres'}"
    if settings.redis_url:
        broker = f"Redis broker at {redis_address(settings.redis_url)}"
    else:
        broker = "in-process broker"
    if settings.s3_bucket:
        storage = f"S3 bucket {settings.s3_bucket}"
        if settings.s3_endpoint_url:
            storage += f" at {settings.s3_endpoint_url}"
    else:
        storage = f"local storage in {settings.data_path / 'uploads'}"
    return f"{database}, {broker}, {storage}"


def listen_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def _serve(settings: Settings) -> int:

    from server.app import create_app
    from server.resources.embedded_postgres import EmbeddedPostgresError
    from server.resources.migrations import MigrationError
    from server.state import BACKENDS

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
        pass
    log.info("starting", extra={"settings": settings.summary()})
    app = create_app(settings)
    app.on_startup.append(_freeze_gc)

    def announce() -> None:
        # Called once the site is bound: the moment to say so.
        url = listen_url(settings)
        backends: dict[str, Any] = app[BACKENDS]
        log.info(f"listening on {url} ({describe_backends(settings)})",
                 extra={"url": url, "backends": dict(backends)})

    try:
        asyncio.run(_run(app, settings, announce))
    except (MigrationError, EmbeddedPostgresError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            log.error(f"cannot start: cannot listen on {listen_url(settings)}: "
                      f"{exc.strerror or exc}")
        else:
            log.error(f"cannot start: {type(exc).__name__}: {exc}")
        return 1
    log.info("stopped")
    return 0


async def _run(app: web.Application, settings: Settings, announce: Callable[[], None]) -> None:
    """Serve until SIGTERM/SIGINT, then stop in the order that loses nothing:

    1. the gateway drains (``Gateway.drain``): new upgrades get 503 and ``/readyz`` says
       ``draining``, while every open socket keeps being served until it has been
       closed 1001 (spread over SHUTDOWN_SPREAD_S);
    2. only then the runner stops: the listener closes, in-flight HTTP requests get
       SHUTDOWN_TIMEOUT_S, ``on_shutdown`` and the cleanup contexts close the pools.

    (``web.run_app`` would run aiohttp's pre-shutdown first, which marks every connection
    closing: from then on aiohttp drops inbound WebSocket frames, close echoes included.)
    """
    from aiohttp import web

    from server.state import RUNTIME

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        announce()
        await stop.wait()
        log.info("stopping: draining sockets")
        runtime = app.get(RUNTIME)
        if runtime is not None:
            await runtime.gateway.drain()
    finally:
        await runner.cleanup()


async def _freeze_gc(app: object) -> None:
    """After start-up, move everything alive to the permanent generation: the
    collector then skips the long-lived objects on every pass (idle-socket CPU)."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
