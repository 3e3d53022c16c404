from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, load_settings, settings_fields

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert (s.host, s.port, s.hello_timeout_s, s.heartbeat_s) == ("127.0.0.1", 8080, 10, 25)
    assert (s.ws_max_message_bytes, s.ws_rate_per_s, s.ws_rate_burst, s.ws_abuse_s) == (
        65536, 20, 50, 10)
    assert (s.ws_outbox_bytes, s.event_retention_days, s.access_token_ttl_s) == (
        1048576, 30, 900)
    assert (s.auth_login_max_failures, s.auth_login_window_s, s.auth_register_per_hour) == (
        5, 900, 20)
    assert s.database_url is None and s.redis_url is None and s.data_dir == "./var"


def test_values_are_parsed_from_strings() -> None:
    s = load_settings({"PORT": "9000", "HEARTBEAT_S": "0.5", "MIGRATE_ON_START": "false",
                       "ALLOWED_ORIGINS": "https://a.example, http://localhost:3000"})
    assert s.port == 9000 and s.heartbeat_s == 0.5 and s.migrate_on_start is False
    assert s.allowed_origins == ("https://a.example", "http://localhost:3000")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"PORT": "abc"}, "PORT='abc': expected an integer 1..65535"),
        ({"PORT": "70000"}, "PORT='70000': expected an integer 1..65535"),
        ({"HEARTBEAT_S": "0"}, "HEARTBEAT_S='0': expected a number > 0 and ≤ 600"),
        ({"MIGRATE_ON_START": "maybe"}, "MIGRATE_ON_START='maybe': expected true or false"),
        ({"ENVIRONMENT": "prod"},
         "ENVIRONMENT='prod': expected one of 'development', 'production'"),
        ({"ALLOWED_ORIGINS": "example.com"}, "ALLOWED_ORIGINS='example.com': expected origins"),
        ({"ENVIRONMENT": "production"}, "SECRET_KEY is unset"),
        ({"DB_POOL_MIN": "9", "DB_POOL_MAX": "3"}, "DB_POOL_MIN=9: expected at most"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert str(info.value).startswith(line)


def test_secrets_never_appear_in_errors_or_repr() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"SECRET_KEY": "tooshort-but-secret"})
    assert "tooshort" not in str(info.value)
    s = Settings(secret_key="k" * 40, database_url="postgresql://u:hunter2@db/x",
                 s3_access_key_id="AKIA", s3_secret_access_key="s3cr3t")
    shown = repr(s) + str(s.summary())
    for secret in ("k" * 40, "hunter2", "s3cr3t", "AKIA"):
        assert secret not in shown


def test_example_env_lists_every_variable_with_its_default() -> None:
    text = (ROOT / "config" / "example.env").read_text()
    listed = {}
    for line in text.splitlines():
        stripped = line.lstrip("# ").strip()
        if "=" in stripped and stripped.split("=", 1)[0].isupper():
            name, value = stripped.split("=", 1)
            listed[name] = value
    for name, default, description in settings_fields():
        assert description, f"{name} has no description"
        assert name in listed, f"{name} missing from config/example.env"
        if isinstance(default, bool):
            expected = str(default).lower()
        elif default is None:
            expected = ""
        elif isinstance(default, tuple):
            expected = ",".join(default)
        else:
            expected = str(default)
        assert listed[name] == expected, f"{name}: example.env says {listed[name]!r}"


def test_process_exits_with_one_line_for_a_bad_port() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PORT"] = "abc"
    result = subprocess.run(
        [sys.executable, "-m", "server"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["configuration error: PORT='abc': expected an integer 1..65535"]
