"""The contracts as front-end tools see them (issue #18, items 12 and 13).

A real app serves ``/openapi.json`` and ``/asyncapi.json``; ``openapi-typescript`` turns
them into TypeScript, and ``tsc --strict`` compiles type assertions against the result
(``clients/contract-checks/assertions/``): each ``@ts-expect-error`` line fails the build
if the type lets the bad value through, so the assertions cut both ways. The official
AsyncAPI parser (default ruleset) must report no error and no warning, for the served
document and for one with a protocol area it has never seen. The tools are pinned in
``clients/contract-checks`` (``npm ci`` there); without Node or those packages the tests
are skipped, saying why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.http.contracts import registered_routes
from tests.gateway.conftest import AppClient
from tests.protocol.new_area import new_area_document

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "clients" / "contract-checks"
BIN = TOOLS / "node_modules" / ".bin"
ASSERTIONS = TOOLS / "assertions"


def _need_tools() -> None:
    if shutil.which("node") is None:
        pytest.skip("contract tool checks skipped: Node.js not installed")
    for package in ("openapi-typescript", "typescript", "@asyncapi/parser"):
        if not (TOOLS / "node_modules" / package).is_dir():
            pytest.skip(f"contract tool checks skipped: {package} missing; run `npm ci` in "
                        "clients/contract-checks")


def _run(args: list[str | Path], cwd: Path, timeout: float = 120) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{output}"
    return output


def _openapi_typescript(spec: Path, out: Path, *flags: str) -> str:
    output = _run([BIN / "openapi-typescript", spec, "-o", out, *flags], cwd=spec.parent)
    # It reports problems of the document (Redocly's lint) as warnings or errors.
    noisy = [line for line in output.splitlines() if re.search(r"warn|error", line, re.I)]
    assert not noisy, output
    return out.read_text()


def _tsc(folder: Path, *files: str) -> None:
    _run([BIN / "tsc", "--noEmit", "--strict", "--target", "es2022", "--module", "esnext",
          "--moduleResolution", "bundler", *files], cwd=folder)


_EMPTY_TUPLE = re.compile(r"(?<![\w\]>)])\[\]")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def _has_empty_tuple(typescript: str) -> bool:
    """A ``[]`` tuple type (``[string, string] | []``) in code, comments left out."""
    return _EMPTY_TUPLE.search(_COMMENT.sub("", typescript)) is not None


def _strip_discriminators(node: Any) -> Any:
    """AsyncAPI spells ``discriminator`` as a string, OpenAPI as an object: drop it when
    the socket's schemas go through openapi-typescript (it only narrows unions)."""
    if isinstance(node, dict):
        return {k: _strip_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_strip_discriminators(v) for v in node]
    return node






async def test_openapi_generates_a_clean_typescript_client(
    app_client: AppClient, tmp_path: Path
) -> None:
    _need_tools()
    client = await app_client()
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(doc))
    generated = _openapi_typescript(spec, tmp_path / "openapi.d.ts")
    assert "@default null" not in generated
    routes = sorted({path for _, path in registered_routes(client.app)})
    assert "/api/v1/files/{key}" in routes  # local storage: the signed file routes
    assertions = (ASSERTIONS / "openapi.ts").read_text()
    assert "= ROUTES;" in assertions
    (tmp_path / "assertions.ts").write_text(assertions.replace("= ROUTES;",
                                                               f"= {json.dumps(routes)};"))
    _tsc(tmp_path, "assertions.ts")
    arrays = _openapi_typescript(spec, tmp_path / "openapi-arrays.d.ts", "--array-length")
    assert not _has_empty_tuple(arrays)


async def test_socket_schemas_generate_exact_types(app_client: AppClient, tmp_path: Path) -> None:
    _need_tools()
    client = await app_client()
    doc = await (await client.get("/asyncapi.json")).json()
    wrapped = {"openapi": "3.1.0", "info": {"title": "socket", "version": "1"}, "paths": {},
               "components": {"schemas": _strip_discriminators(doc["components"]["schemas"])}}
    spec = tmp_path / "socket.json"
    spec.write_text(json.dumps(wrapped))
    _openapi_typescript(spec, tmp_path / "socket.d.ts")
    arrays = _openapi_typescript(spec, tmp_path / "socket-arrays.d.ts", "--array-length")
    assert "pet_ids: [\n" in arrays  # the tuple is really generated
    assert not _has_empty_tuple(arrays), "a `[]` tuple member from maxItems"
    shutil.copy(ASSERTIONS / "socket.ts", tmp_path / "socket-assertions.ts")
    shutil.copy(ASSERTIONS / "socket-arrays.ts", tmp_path / "array-assertions.ts")
    _tsc(tmp_path, "socket-assertions.ts", "array-assertions.ts")


def _asyncapi_diagnostics(doc: dict[str, Any], folder: Path) -> list[dict[str, str]]:
    path = folder / "asyncapi.json"
    path.write_text(json.dumps(doc))
    output = _run(["node", TOOLS / "check-asyncapi.mjs", path], cwd=TOOLS)
    diagnostics: list[dict[str, str]] = json.loads(output)
    return diagnostics


async def test_the_asyncapi_parser_accepts_the_served_document(
    app_client: AppClient, tmp_path: Path
) -> None:
    _need_tools()
    client = await app_client(public_url="https://api.petspark.example",
                              api_contact_email="api@petspark.example")
    doc = await (await client.get("/asyncapi.json")).json()
    assert doc["servers"]["petspark"]["host"] == "api.petspark.example"
    assert doc["servers"]["petspark"]["protocol"] == "wss"
    diagnostics = _asyncapi_diagnostics(doc, tmp_path)
    serious = [d for d in diagnostics if d["severity"] in ("error", "warning")]
    assert serious == [], json.dumps(serious[:20], indent=1)
    # What remains is at most advice (AsyncAPI 3.1 exists; 3.0 is what generators take).
    assert {d["code"] for d in diagnostics} <= {"asyncapi-latest-version"}, diagnostics


async def test_the_asyncapi_parser_accepts_a_new_area_as_generated(tmp_path: Path) -> None:
    _need_tools()
    diagnostics = _asyncapi_diagnostics(new_area_document(), tmp_path)
    serious = [d for d in diagnostics if d["severity"] in ("error", "warning")]
    assert serious == [], json.dumps(serious[:20], indent=1)


async def test_the_parser_would_catch_a_broken_document(tmp_path: Path) -> None:
    """The check can fail: a message reference that leads nowhere is an error."""
    _need_tools()
    doc = new_area_document()
    doc["operations"]["clientNewthingStart"]["messages"] = [
        {"$ref": "#/channels/ws/messages/client.nothing"}]
    diagnostics = _asyncapi_diagnostics(doc, tmp_path)
    assert any(d["severity"] == "error" for d in diagnostics), diagnostics
