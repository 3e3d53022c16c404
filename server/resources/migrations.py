"""Forward-only SQL migrations: ``server/migrations/NNNN_name.sql``, package data.

They are read with ``importlib.resources`` from the installed ``server.migrations``
package (never from the working directory), so a non-editable install migrates
from anywhere. Finding none is an error (``MigrationError``): a build without its
migrations must not start on an empty schema.

Guarantees:
- Each pending file is applied in its own transaction, in number order.
- The whole run holds a PostgreSQL advisory lock, so nodes starting at once
  apply each file exactly once (the others wait, then find nothing to do).
- Each applied file's SHA-256 is recorded; if an applied file was edited the
  run refuses (``MigrationError``) instead of starting on a schema that no
  longer matches the code.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "server.migrations"
_LOCK_KEY = 0x5065_7453_7061_726B & 0x7FFF_FFFF_FFFF_FFFF  # "PetSpark"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Traversable:
    """The installed ``server.migrations`` package's folder (a wheel's, or the source's
    in an editable install)."""
    return files(MIGRATIONS_PACKAGE)


def discover(directory: Traversable | None = None) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``directory`` (default: the package), in number order.

    Raises ``MigrationError`` for a badly named file, two files with one number, or none.
    """
    folder = migrations_dir() if directory is None else directory
    found: list[Migration] = []
    sql_files = [p for p in folder.iterdir() if p.name.endswith(".sql") and p.is_file()]
    for path in sorted(sql_files, key=lambda p: p.name):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: expected a name like 0001_create_users.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    if not found:
        raise MigrationError(
            f"no migrations found in {folder}: this installation is incomplete "
            "(the package must ship server/migrations/*.sql)"
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number in {folder}")
    return found


async def migrate(conn: asyncpg.Connection, directory: Traversable | None = None) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    migrations = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
        known = {m.version for m in migrations}
        for version, row in applied.items():
            if version not in known:
                raise MigrationError(
                    f"database has migration {row['name']} that this code does not know; "
                    "refusing to start an older build on a newer schema"
                )
        done: list[str] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was edited after it was applied (checksum "
                        "mismatch); add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migration applied", extra={"migration": migration.name})
            done.append(migration.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
