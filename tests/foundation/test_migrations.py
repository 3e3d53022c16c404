from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from server.resources.migrations import MigrationError, discover, migrate, migrations_dir

ROOT = Path(__file__).resolve().parents[2]


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_applies_pending_once_then_nothing(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await migrate(conn, tmp_path) == ["0001_a.sql", "0002_b.sql"]
        assert await migrate(conn, tmp_path) == []
        write(tmp_path, "0003_c.sql", "CREATE TABLE c (id int);")
        assert await migrate(conn, tmp_path) == ["0003_c.sql"]
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_whole_file(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int); SELECT * FROM nowhere;")
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('a')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_file_once(
    fresh_database: str, tmp_path: Path
) -> None:
    # Not idempotent on purpose: a second application would fail with "already exists".
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int); SELECT pg_sleep(0.2);")
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    conns = [await asyncpg.connect(fresh_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, tmp_path) for c in conns))
        applied = [name for r in results for name in r]
        assert sorted(applied) == ["0001_a.sql", "0002_b.sql"]
    finally:
        for c in conns:
            await c.close()


async def test_edited_applied_file_is_refused(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn, tmp_path)
        write(tmp_path, "0001_a.sql", "CREATE TABLE a (id bigint);")
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_unknown_applied_version_is_refused(fresh_database: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    conn = await asyncpg.connect(fresh_database)
    try:
        await migrate(conn, tmp_path)
        (tmp_path / "0002_b.sql").unlink()
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "1_a.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="expected a name"):
        discover(tmp_path)


async def test_no_migrations_is_refused_before_touching_the_database(
    fresh_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(MigrationError, match="no migrations found"):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


def test_project_migrations_are_well_formed() -> None:
    migrations = discover()
    versions = [m.version for m in migrations]
    # Numbers are handed out up front to areas built in parallel (0008/0009 community and
    # adoption, 0010 admin, 0011 live, 0012 accounts), so a branch may have a gap until the
    # others land; the migrator applies every pending file whatever its number. Numbers
    # start at 1 and never repeat (discover() refuses duplicates).
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert all(m.name.endswith(".sql") for m in migrations)


def test_migrations_are_read_from_the_package_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import server.migrations

    monkeypatch.chdir(tmp_path)
    (tmp_path / "migrations").mkdir()  # a decoy where the old loader looked
    write(tmp_path / "migrations", "0001_decoy.sql", "SELECT 1;")
    assert Path(str(migrations_dir())) == Path(server.migrations.__file__).parent
    assert discover()[0].name == "0001_foundation.sql"


def test_no_migrations_outside_the_package() -> None:
    # A branch from before the move that adds migrations/0007_x.sql at the top level
    # would otherwise be silently ignored.
    assert not (ROOT / "migrations").exists(), "migrations belong in server/migrations/"
