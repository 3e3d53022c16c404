"""The real process: SIGTERM closes sockets 1001, finishes, exits 0; embedded PostgreSQL
keeps its data across restarts and a copy left running by a killed owner is stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from server.resources.embedded_postgres import EmbeddedPostgres
from tests.conftest import TEST_SECRET
from tests.support.auth import unique_email
from tests.support.services import free_port
from tests.support.waiting import wait_ready

ROOT = Path(__file__).resolve().parents[2]


async def test_sigterm_closes_sockets_1001_and_exits_0(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix, "DATA_DIR": str(tmp_path),
           "SECRET_KEY": TEST_SECRET, "PASSWORD_HASH_TIME_COST": "1",
           "PASSWORD_HASH_MEMORY_KIB": "8", "LOG_LEVEL": "warning",
           "AUTH_REGISTER_PER_HOUR": "100000", "SHUTDOWN_SPREAD_S": "0.2"}
    log = (tmp_path / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, tmp_path / "server.log")
            async with http.post(f"{base}/api/v1/auth/register", json={
                    "email": unique_email(), "password": "correct horse 1",
                    "display_name": "T"}) as resp:
                token = (await resp.json())["access_token"]
            ws = await http.ws_connect(f"{base}/ws",
                                       headers={"Authorization": f"Bearer {token}"})
            await ws.send_str('{"type": "hello"}')
            assert (await ws.receive_json(timeout=5))["type"] == "welcome"
            proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        assert await asyncio.wait_for(proc.wait(), timeout=20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


def test_embedded_postgres_keeps_data_and_stops_a_leftover() -> None:
    root = Path(tempfile.mkdtemp(prefix="petspark-test-embedded-"))
    try:
        first = EmbeddedPostgres(root)
        dsn = first.start()
        asyncio.run(_execute(dsn, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)"))
        first.stop()

        # A run killed without stopping its PostgreSQL (the child outlives the parent).
        script = ("import os\nfrom pathlib import Path\n"
                  "from server.resources.embedded_postgres import EmbeddedPostgres\n"
                  f"EmbeddedPostgres(Path({str(root)!r})).start()\nos._exit(0)\n")
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
        second = EmbeddedPostgres(root)
        dsn = second.start()  # finds the leftover, stops it, starts afresh
        try:
            assert asyncio.run(_fetchval(dsn, "SELECT x FROM kept")) == 7
        finally:
            second.stop()
        left = [p for p in psutil.process_iter(["cmdline"])
                if str(root / "postgres") in " ".join(p.info["cmdline"] or [])]
        assert not left, "PostgreSQL left running"
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_pool_close_is_bounded_when_a_connection_is_stuck(database_url: str) -> None:
    from server.resources.postgres import close_pool, create_pool

    pool = await create_pool(database_url, min_size=1, max_size=2)
    held = await pool.acquire()  # a stuck task that never releases its connection
    # Unbounded, close_pool would wait for ever for ``held``: wait_for fails the test.
    await asyncio.wait_for(close_pool(pool, timeout_s=0.3), timeout=10)
    assert pool.is_closing()
    del held
