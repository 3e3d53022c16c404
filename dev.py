#!/usr/bin/env python3
"""One-command entry for a fresh machine with only Python 3.11+.

    python3 dev.py serve     # create .venv, install, run the server (embedded default)
    python3 dev.py test      # create .venv, install with test deps, run the whole suite

The virtual environment is (re)installed only when pyproject.toml or
constraints.txt changed since the last install. Extra arguments go to the
server (`serve migrate`) or to pytest (`test -k gateway`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PETSPARK_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint(extras: str) -> str:
    digest = hashlib.sha256(extras.encode())
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("PetSpark needs Python 3.11 or newer")
    stamp = VENV / f".installed-{extras or 'runtime'}"
    want = _fingerprint(extras)
    if stamp.exists() and stamp.read_text() == want and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    target = f".[{extras}]" if extras else "."
    print(f"installing {target} (pinned by constraints.txt)", file=sys.stderr)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", "constraints.txt", "-e", target],
        cwd=ROOT, check=True,
    )
    stamp.write_text(want)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "serve":
        ensure_env("")
        args = [str(PYTHON), "-m", "server", *rest]
    else:
        ensure_env("dev")
        args = [str(PYTHON), "-m", "pytest", *rest]
    os.chdir(ROOT)
    if os.name == "nt":  # pragma: no cover
        return subprocess.call(args)
    os.execv(args[0], args)
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main())
