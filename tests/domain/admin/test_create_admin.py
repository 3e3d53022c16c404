"""``python -m server create-admin EMAIL`` as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from protocol.admin import AdminUsers
from tests.conftest import TEST_SECRET
from tests.domain.admin.conftest import pool_of
from tests.domain.conftest import AppClient, cid, new_user

ROOT = Path(__file__).resolve().parents[3]


async def run_cli(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path),
           "SECRET_KEY": TEST_SECRET, "LOG_LEVEL": "warning"}
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_an_existing_account_becomes_admin(app_client: AppClient, database_url: str,
                                                 tmp_path: Path) -> None:
    client = await app_client()
    user = await new_user(client)
    assert getattr(await user.sock.request(AdminUsers(id=cid())), "code", None) == "forbidden"

    code, out, err = await run_cli(database_url, tmp_path, "create-admin",
                                   f"  {user.reg.email.upper()} ")
    assert code == 0, err
    assert out == f"{user.reg.email} is now an admin (user {user.id})\n"
    # The open socket may use admin commands at once (the guard reads the stored role).
    assert (await user.cmd(AdminUsers(id=cid()))).users
    entry = await pool_of(client).fetchrow(
        "SELECT actor_id, action, target_id, data FROM admin_audit")
    assert entry["actor_id"] is None and entry["action"] == "cli.create_admin"
    assert entry["target_id"] == user.id
    assert entry["data"] == {"role": "admin", "previous": "user"}

    code, out, _ = await run_cli(database_url, tmp_path, "create-admin", user.reg.email)
    assert code == 0 and out == f"{user.reg.email} is already an admin (user {user.id})\n"
    assert await pool_of(client).fetchval("SELECT count(*) FROM admin_audit") == 1


async def test_an_unknown_email_fails_clearly(app_client: AppClient, database_url: str,
                                             tmp_path: Path) -> None:
    await app_client()  # a clean, migrated database
    code, out, err = await run_cli(database_url, tmp_path, "create-admin", "nobody@example.com")
    assert code == 1 and out == ""
    assert err.strip() == ("create-admin: no account with email 'nobody@example.com': "
                           "register it first, then run create-admin again")
    code, _, err = await run_cli(database_url, tmp_path, "create-admin")
    assert code == 2 and "create-admin takes one EMAIL" in err


async def test_a_database_without_the_schema_says_to_migrate(fresh_database: str,
                                                              tmp_path: Path) -> None:
    code, _, err = await run_cli(fresh_database, tmp_path, "create-admin", "a@example.com")
    assert code == 1 and "run `python -m server migrate`" in err
