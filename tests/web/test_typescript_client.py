"""The TypeScript client's own test suites, run from pytest so that `python3 dev.py test`
covers them: the Node unit tests, the demo bundle's freshness, and the end-to-end run in
Debian's Chromium against real server processes on this run's database and Redis.

Each is skipped, saying why, where Node, the npm packages or Chromium are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _need_node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("TypeScript client tests skipped: Node.js/npm not installed")
    if not (PACKAGE / "node_modules" / "typescript").is_dir():
        pytest.skip("TypeScript client tests skipped: run `npm ci` in clients/typescript first")


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        args, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{output[-12000:]}"
    return output


def test_node_unit_tests() -> None:
    _need_node()
    output = _run(["npm", "test", "--silent"], timeout=300)
    assert "# fail 0" in output, output[-4000:]


def test_demo_bundle_is_built_from_its_source() -> None:
    _need_node()
    _run(["node", "scripts/build-demo.mjs", "--check"], timeout=120)


def test_browser_end_to_end(database_url: str, redis_url: str, redis_prefix: str) -> None:
    _need_node()
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)")
    if not (PACKAGE / "node_modules" / "playwright-core").is_dir():
        pytest.skip("browser tests skipped: run `npm ci` in clients/typescript first")
    artifacts = tempfile.mkdtemp(prefix="petspark-e2e-")
    data_dir = tempfile.mkdtemp(prefix="petspark-e2e-data-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"{redis_prefix}e2e:",
        "PETSPARK_PYTHON": sys.executable,
        "PETSPARK_ROOT": str(ROOT),
        "PETSPARK_ARTIFACTS": artifacts,
        "PETSPARK_DATA_DIR": data_dir,
        "CHROMIUM": CHROMIUM,
    }
    try:
        _run(["npm", "run", "build", "--silent"], timeout=120)
        output = _run(["node", "--test", "--test-reporter=spec", "test/e2e/run.mjs"],
                      timeout=300, env=env)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(output)
    print(f"E2E screenshots and server logs: {artifacts}")
    assert "fail 0" in output
