"""examples/match_and_chat.py, run as a user runs it, against a real app (PostgreSQL,
Redis); and the README shows exactly that script."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

from tests.conftest import AppClient

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "match_and_chat.py"


async def test_the_example_matches_two_users_and_delivers_a_message(
    app_client: AppClient, database_url: str
) -> None:
    node = await app_client()
    base = str(node.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), base, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("Alice created Rex (") and ", Bob created Mia (" in lines[0]
    assert lines[1].startswith("match ")
    assert lines[2].startswith("Bob received: 'Hi Bob! Rex would love to meet Mia.' (seq ")

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM matches") == 1
        assert await conn.fetchval("SELECT body FROM messages") == (
            "Hi Bob! Rex would love to meet Mia.")
    finally:
        await conn.close()


def test_the_readme_shows_the_runnable_script() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{SCRIPT.read_text()}```\n" in readme
    assert "python3 dev.py example" in readme
