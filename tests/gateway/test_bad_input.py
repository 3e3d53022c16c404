"""Bad input never becomes ``internal`` (issue #17 item 12), for every command at once.

- Every id field of every command, spelt as another UUID form (``{…}``, ``urn:uuid:…``,
  no hyphens), is answered exactly like an unknown id in the canonical form: the one id
  parser (``server/ids.py``) must be on every path.
- A NUL character in any text of any command is ``bad_request`` naming the field (the
  codec refuses it once, for every message), on both sub-protocols.
- A value echoed in an error is bounded (``unknown type '…'``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest
from msgspec import inspect

from protocol.base import Command
from protocol.codec import ECHO_MAX, JSON, MSGPACK
from protocol.session import Hello
from tests.domain.admin.conftest import new_admin
from tests.gateway.conftest import AppClient
from tests.protocol.samples import CLIENT_SAMPLES
from tests.support.auth import register
from tests.support.ws import ProtocolSocket, open_session

COMMAND_SAMPLES = [m for m in CLIENT_SAMPLES if isinstance(m, Command) and not isinstance(m, Hello)]
NOT_IDS = {"id", "idempotency_key", "client_msg_id"}


def is_id_field(name: str) -> bool:
    return name not in NOT_IDS and (name.endswith("_id") or name.endswith("_ids")
                                    or name == "ids")


def with_fresh_ids(value: Any, top: bool = True) -> Any:
    """The sample as builtins, every id field a fresh canonical (unknown) UUID."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if (is_id_field(key) or (key == "id" and not top)) and isinstance(item, str):
                out[key] = str(uuid.uuid4())
            elif is_id_field(key) and isinstance(item, list):
                out[key] = [str(uuid.uuid4()) for _ in item] or [str(uuid.uuid4())]
            else:
                out[key] = with_fresh_ids(item, top=False)
        return out
    if isinstance(value, list):
        return [with_fresh_ids(v, top=False) for v in value]
    return value


def id_paths(frame: dict[str, Any]) -> list[tuple[str | int, ...]]:
    paths: list[tuple[str | int, ...]] = []
    for key, item in frame.items():
        if is_id_field(key) and isinstance(item, str):
            paths.append((key,))
        elif is_id_field(key) and isinstance(item, list):
            paths.append((key, 0))
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            paths.append((key, "id"))
    return paths


def replaced(frame: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(frame))
    target: Any = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def spellings(canonical: str) -> list[str]:
    return ["{" + canonical + "}", "urn:uuid:" + canonical, canonical.replace("-", ""),
            "{" + canonical.upper() + "}", canonical + "\x00"]


async def reply_code(sock: ProtocolSocket, frame: dict[str, Any]) -> str:
    data = (msgspec.msgpack.encode(frame) if sock.codec.binary
            else msgspec.json.encode(frame).decode())
    await sock.send_raw(data)
    while True:
        message = await sock.receive(timeout=10)
        if getattr(message, "id", None) == frame["id"]:
            return str(getattr(message, "code", "ok"))


@pytest.fixture
async def sock(app_client: AppClient) -> ProtocolSocket:
    """An admin's socket: admin commands get past their guard, so their ids are parsed too."""
    client = await app_client(ws_rate_per_s=100_000.0, ws_rate_burst=100_000,
                              ws_frames_per_s=100_000.0, ws_frames_burst=100_000)
    user = await new_admin(client)
    return user.sock


async def test_every_id_field_in_any_spelling_is_answered_like_an_unknown_id(
    sock: ProtocolSocket,
) -> None:
    checked = 0
    mismatches = []
    for n, sample in enumerate(COMMAND_SAMPLES):
        base = with_fresh_ids(msgspec.to_builtins(sample))
        for path in id_paths(base):
            base["id"] = f"base-{n}-{checked}"
            expected = await reply_code(sock, base)
            assert expected != "internal", (type(sample).__name__, path)
            canonical: Any = base
            for step in path:
                canonical = canonical[step]
            for i, spelt in enumerate(spellings(canonical)):
                frame = replaced(base, path, spelt)
                frame["id"] = f"odd-{n}-{checked}-{i}"
                got = await reply_code(sock, frame)
                # A NUL is refused at decode (bad_request); every other spelling is an
                # unknown id, answered exactly as the canonical one.
                want = "bad_request" if "\x00" in spelt else expected
                if got != want:
                    mismatches.append((type(sample).__name__, path, spelt, got, want))
            checked += 1
    assert not mismatches, mismatches
    assert checked > 45  # every area's ids were reached, admin ones included


def text_fields(tp: Any, prefix: str = "") -> list[tuple[str, bool]]:
    """(path, has a pattern) of every free-text field of a Struct type (one level of nesting
    and the first item of lists)."""
    out: list[tuple[str, bool]] = []
    info = inspect.type_info(tp)
    assert isinstance(info, inspect.StructType)
    def bare(t: Any) -> Any:
        while isinstance(t, inspect.Metadata):
            t = t.type
        if isinstance(t, inspect.UnionType):
            t = next((bare(u) for u in t.types if not isinstance(u, inspect.NoneType)), t)
        return t

    for field in info.fields:
        ftype = bare(field.type)
        path = f"{prefix}{field.encode_name}"
        if isinstance(ftype, inspect.StrType):
            out.append((path, ftype.pattern is not None))
        elif (isinstance(ftype, inspect.ListType)
              and isinstance(item := bare(ftype.item_type), inspect.StrType)):
            out.append((f"{path}[0]", item.pattern is not None))
        elif isinstance(ftype, inspect.StructType) and not prefix:
            out.extend(text_fields(ftype.cls, f"{path}."))
    return out


def put_nul(frame: dict[str, Any], path: str) -> dict[str, Any] | None:
    copy = json.loads(json.dumps(frame))
    target: Any = copy
    steps = path.replace("[0]", ".0").split(".")
    for step in steps[:-1]:
        if step == "0":
            if not target:
                return None
            target = target[0]
            continue
        if step not in target or target[step] is None:
            return None
        target = target[step]
    last = steps[-1]
    if last == "0":
        if not target:
            return None
        target[0] = "\x00" + str(target[0])[1:]
    else:
        if last not in target or not isinstance(target[last], str):
            return None
        target[last] = "\x00" + target[last][1:]
    return copy


@pytest.mark.parametrize("codec", [JSON.name, MSGPACK.name])
async def test_a_nul_in_any_text_of_any_command_is_bad_request_naming_the_field(
    app_client: AppClient, codec: str
) -> None:
    client = await app_client(ws_rate_per_s=100_000.0, ws_rate_burst=100_000,
                              ws_frames_per_s=100_000.0, ws_frames_burst=100_000)
    user = await register(client)
    sock = await open_session(client, user.access_token, codec=codec)
    checked = 0
    for n, sample in enumerate(COMMAND_SAMPLES):
        base = msgspec.to_builtins(sample)
        for path, patterned in text_fields(type(sample)):
            if path in ("id", "type"):
                continue
            frame = put_nul(base, path)
            if frame is None:
                continue
            frame["id"] = f"nul-{n}-{checked}"
            data = (msgspec.msgpack.encode(frame) if codec == MSGPACK.name
                    else msgspec.json.encode(frame).decode())
            await sock.send_raw(data)
            while True:
                reply = await sock.receive(timeout=10)
                if getattr(reply, "id", None) == frame["id"]:
                    break
            assert getattr(reply, "code", None) == "bad_request", (
                type(sample).__name__, path, reply)
            if not patterned:
                assert reply.message == f"{path}: must not contain NUL characters", reply
            checked += 1
    assert checked > 80


async def test_an_unknown_type_is_echoed_bounded(sock: ProtocolSocket) -> None:
    await sock.send_raw(json.dumps({"type": "x" * 5000 + "\n\x1b[31m", "id": "long"}))
    reply = await sock.receive()
    assert reply.code == "bad_request"
    assert reply.message == "unknown type '" + "x" * ECHO_MAX + "…'"
    await sock.send_raw(json.dumps({"type": "pets.create", "id": "enum", "name": "Rex",
                                    "species": "y" * 3000}))
    reply = await sock.receive()
    assert reply.message == "species: invalid enum value '" + "y" * ECHO_MAX + "…'"
