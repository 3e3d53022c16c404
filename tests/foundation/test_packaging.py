"""The wheel is what the Dockerfile installs: it must carry the migrations, and an
installation of it must migrate and serve from any working directory."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest

from server.resources.reachability import pg_address
from tests.conftest import TEST_SECRET
from tests.support.services import free_port
from tests.support.waiting import wait_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the build leaves nothing in the tree)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("server", "protocol", "client"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(out), str(src)],
        check=True, timeout=300, capture_output=True,
    )
    (built,) = out.glob("petspark_server-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (without dependencies: the test's venv has them) into a folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        check=True, timeout=300, capture_output=True,
    )
    return target


def test_wheel_carries_every_migration_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(n.rsplit("/", 1)[1] for n in names
                     if n.startswith("server/migrations/") and n.endswith(".sql"))
    source = sorted(p.name for p in (ROOT / "server" / "migrations").glob("*.sql"))
    assert shipped == source and len(source) >= 6
    assert "server/migrations/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "examples/"))]


def _installed_env(installed: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "PYTHONPATH")}
    env.update({"PYTHONPATH": str(installed), "SECRET_KEY": TEST_SECRET,
                "PASSWORD_HASH_TIME_COST": "1", "PASSWORD_HASH_MEMORY_KIB": "8"})
    env.update(extra)
    return env


def test_the_installed_package_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    probe = ("import server, server.resources.migrations as m; "
             "print(server.__file__); print(m.migrations_dir())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, text=True, check=True,
                         capture_output=True, env=_installed_env(installed), timeout=60)
    module_file, folder = out.stdout.split()
    assert Path(module_file).is_relative_to(installed)
    assert Path(folder) == installed / "server" / "migrations"


async def test_installed_wheel_migrates_and_serves_from_any_directory(
    installed: Path, fresh_database: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _installed_env(installed, DATABASE_URL=fresh_database,
                         DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="info")
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "migrate", cwd=elsewhere, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(migrate.communicate(), timeout=60)
    assert migrate.returncode == 0, err.decode()
    shipped = sorted(f.name for f in (ROOT / "server" / "migrations").glob("*.sql"))
    assert out.decode().startswith(f"applied {len(shipped)} migration(s): {shipped[0]}"), out

    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", cwd=elsewhere, env={**env, "PORT": str(port)},
            stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, log_path, timeout=60)
            async with http.get(f"{base}/healthz", headers={"X-Request-Id": "probe-42"}) as r:
                assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    listening = [r for r in records if r["msg"].startswith("listening on ")]
    assert [r["msg"] for r in listening] == [
        f"listening on http://127.0.0.1:{port} (PostgreSQL at {pg_address(fresh_database)}, "
        f"in-process broker, local storage in {tmp_path / 'data' / 'uploads'})"
    ]
    access = [r for r in records if r.get("request_id") == "probe-42"]
    assert len(access) == 1
    assert access[0]["msg"].startswith("GET /healthz 200 ")
    assert (access[0]["method"], access[0]["path"], access[0]["status"]) == (
        "GET", "/healthz", 200)
    assert isinstance(access[0]["ms"], float) and access[0]["level"] == "info"
    assert not [r for r in records if r["level"] == "error"]


@pytest.mark.parametrize(("command", "verb"), [("serve", "cannot start"),
                                               ("migrate", "cannot migrate")])
def test_an_installation_without_migrations_refuses_to_start(
    installed: Path, database_url: str, tmp_path: Path, command: str, verb: str
) -> None:
    broken = tmp_path / "site"
    shutil.copytree(installed, broken)
    for sql in (broken / "server" / "migrations").glob("*.sql"):
        sql.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "server", command], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env=_installed_env(broken, DATABASE_URL=database_url,
                                                  MIGRATE_ON_START="false"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["msg"].startswith(f"{verb}: no migrations found in {broken}/server/migrations")
