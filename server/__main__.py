"""``python -m server [serve|migrate]`` — ``serve`` is the default."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

from server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="PetSpark server")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "migrate"],
        help="serve (default): run the server; migrate: apply pending migrations and exit",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from server.observability.logging import configure_logging

    configure_logging(settings.log_level)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    return _serve(settings)


async def _migrate(settings: Settings) -> int:
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
    except MigrationError as exc:
        log.error("migration refused: %s", exc)
        return 1
    log.info("migrations done", extra={"database": kind, "applied": applied})
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.resources.embedded_postgres import EmbeddedPostgresError
    from server.resources.migrations import MigrationError

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
        pass
    log.info("starting", extra={"settings": settings.summary()})
    app = create_app(settings)
    app.on_startup.append(_freeze_gc)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            shutdown_timeout=settings.shutdown_timeout_s,
            print=None,
            access_log=None,
        )
    except (MigrationError, EmbeddedPostgresError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("stopped")
    return 0


async def _freeze_gc(app: object) -> None:
    """After start-up, move everything alive to the permanent generation: the
    collector then skips the long-lived objects on every pass (idle-socket CPU)."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
