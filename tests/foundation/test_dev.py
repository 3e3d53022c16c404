"""dev.py's usage, and the commands the README shows: each one names a real dev.py
command, module or file, and none needs an activated environment."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402


def run_dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "dev.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "complaint"), [
    ((), ""),
    (("bogus",), "dev.py: unknown command 'bogus'"),
    (("bench",), "dev.py: bench wants one of " + ", ".join(sorted(
        f.stem for f in (ROOT / "bench").glob("[!_]*.py")))),
    (("bench", "nope"), "(got 'nope')"),
])
def test_no_or_a_wrong_argument_prints_the_usage(args: tuple[str, ...], complaint: str) -> None:
    result = run_dev(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "python3 dev.py serve" in result.stderr and "python3 dev.py bench NAME" in result.stderr


def test_help_prints_the_usage_and_succeeds() -> None:
    result = run_dev("--help")
    assert result.returncode == 0
    for command in dev.COMMANDS:
        assert f"python3 dev.py {command}" in result.stdout


def _readme_commands() -> list[str]:
    """Every command in the README's sh blocks and inline code."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith(("export ", "#")):
                commands.append(line)
    commands += re.findall(r"`([^`\n]*(?:dev\.py|python)[^`\n]*)`", text)
    return commands


def test_readme_commands_need_no_activated_environment() -> None:
    commands = _readme_commands()
    assert any(c.startswith("python3 dev.py serve") for c in commands)
    for command in commands:
        for match in re.finditer(r"(?:^|\s)(\S*python3?)\s+(\S+)(?:\s+(\S+))?", command):
            exe, first, second = match.group(1), match.group(2), match.group(3)
            if exe.endswith("dev.py"):
                continue
            if exe == "python3" and first == "dev.py":
                if second is None:
                    continue
                assert second in dev.COMMANDS, command
                if second == "bench":
                    name = command.split("bench", 1)[1].split()[0]
                    assert name in dev.benches() or name == "NAME", command
                continue
            if exe == "python3" and first == "-c":
                continue
            # The Dockerfile's and an installed environment's `python -m server` are
            # described in prose, never shown as a command to type.
            assert exe == ".venv/bin/python", f"needs an activated environment: {command}"
            if first == "-m":
                module = (second or "").split(".")[0]
                assert importlib.util.find_spec(module) is not None or (
                    ROOT / module).is_dir(), command
            else:
                assert (ROOT / first).exists(), command
