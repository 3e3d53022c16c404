"""The generated AsyncAPI document and schemas: complete, resolvable, exact for code
generators, and built from whatever Structs the unions hold (no per-message lists).

The tools themselves (openapi-typescript, @asyncapi/parser) run in
tests/gateway/test_contract_tools.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol import COMMANDS, EVENTS
from protocol.base import Command, Result
from protocol.codes import CloseCode, should_reconnect
from protocol.matching import SwipeResult
from protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from protocol.schema import asyncapi_document, close_codes, contract_schemas, for_server
from protocol.session import Ok
from protocol.uploads import CompleteRequest
from tests.protocol.new_area import new_area_document


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, ref
        node = node[part]
    return node


def _refs(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
        for value in node.values():
            found += _refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _refs(value)
    return found


def _keys(node: object, key: str) -> int:
    if isinstance(node, dict):
        return (key in node) + sum(_keys(v, key) for v in node.values())
    if isinstance(node, list):
        return sum(_keys(v, key) for v in node)
    return 0


def test_asyncapi_is_3_0_with_every_message_and_an_operation_each() -> None:
    doc = asyncapi_document()
    text = json.dumps(doc)
    assert doc["asyncapi"] == "3.0.0"
    messages = doc["components"]["messages"]
    channel = doc["channels"]["ws"]
    assert channel["address"] == "/ws"
    for cls in CLIENT_MESSAGE_TYPES:
        assert messages[f"client.{cls.wire_type()}"]["name"] == cls.wire_type()
    for cls in SERVER_MESSAGE_TYPES:
        if cls is not Ok:  # replaced by one typed ok per command
            assert messages[f"server.{cls.wire_type()}"]["name"] == cls.wire_type()
    for tag in COMMANDS:
        assert messages[f"server.ok.{tag}"]["name"] == "ok"
    assert set(channel["messages"]) == set(messages)
    actions = [op["action"] for op in doc["operations"].values()]
    assert actions.count("receive") == len(CLIENT_MESSAGE_TYPES)
    assert actions.count("send") == len(SERVER_MESSAGE_TYPES) - 1
    for tag in [*COMMANDS, *EVENTS, "hello", "welcome", "ok", "error", "ping", "pong", "ack"]:
        assert f'"{tag}"' in text
    assert "petspark.v1.json" in text and "petspark.v1.msgpack" in text


def test_every_reference_resolves() -> None:
    doc = asyncapi_document()
    refs = _refs(doc)
    assert len(refs) > 500
    for ref in refs:
        _resolve(doc, ref)


def test_each_command_replies_with_its_typed_ok_or_error_correlated_by_id() -> None:
    doc = asyncapi_document()
    operations = doc["operations"]
    for tag, cmd in COMMANDS.items():
        op = operations["client" + "".join(
            w[:1].upper() + w[1:] for w in tag.replace("_", ".").split("."))]
        assert op["action"] == "receive"
        assert _resolve(doc, op["messages"][0]["$ref"])["$ref"] == (
            f"#/components/messages/client.{tag}")
        replies = [r["$ref"].rsplit("/", 1)[1] for r in op["reply"]["messages"]]
        assert replies == [f"server.ok.{tag}", "server.error"]
        ok = doc["components"]["messages"][f"server.ok.{tag}"]
        payload = _resolve(doc, ok["payload"]["$ref"])
        assert payload["properties"]["result"] == {
            "$ref": f"#/components/schemas/{cmd.result_type.__name__}"}
        assert payload["properties"]["type"]["enum"] == ["ok"]
        assert set(payload["required"]) == {"type", "id", "result"}
        for message in (doc["components"]["messages"][f"client.{tag}"], ok):
            correlation = _resolve(doc, message["correlationId"]["$ref"])
            assert correlation["location"] == "$message.payload#/id"
    hello = operations["clientHello"]["reply"]["messages"][0]["$ref"]
    assert hello.endswith("/server.welcome")
    assert operations["serverPing"]["reply"]["messages"][0]["$ref"].endswith("/client.pong")


def test_close_codes_are_machine_readable() -> None:
    codes = asyncapi_document()["channels"]["ws"]["x-close-codes"]
    assert codes == close_codes()
    assert set(codes) == {str(int(c)) for c in CloseCode}
    for code, entry in codes.items():
        assert entry["meaning"] and entry["client"], code
        assert entry["reconnect"] is should_reconnect(int(code))
    assert codes["4001"]["name"] == "not_authenticated"
    assert codes["4001"]["client"] == "get new credentials first"
    assert codes["4008"]["reconnect"] is True and codes["4003"]["reconnect"] is False


def test_servers_and_contact_follow_the_serving_address() -> None:
    doc = for_server(asyncapi_document(), "wss://api.petspark.example",
                     {"name": "PetSpark backend", "email": "api@petspark.example"})
    assert doc["servers"]["petspark"]["host"] == "api.petspark.example"
    assert doc["servers"]["petspark"]["protocol"] == "wss"
    assert doc["info"]["contact"]["email"] == "api@petspark.example"
    assert "contact" not in asyncapi_document()["info"]  # the cached original is untouched


def test_schemas_are_exact_for_code_generators() -> None:
    schemas = asyncapi_document()["components"]["schemas"]
    # No default anywhere: an optional field is optional, not "always there".
    assert _keys(schemas, "default") == 0
    limit = schemas["DiscoveryCandidates"]["properties"]["limit"]
    assert "limit" not in schemas["DiscoveryCandidates"]["required"]
    assert limit["description"].endswith("Absent: `20`.")
    assert "edited_at" not in schemas["ChatMessage"]["required"]
    # SwipeResult does not omit defaults and only the server sends it: always present.
    assert schemas["SwipeResult"]["required"] == ["match"]
    # Fixed-length lists stay lists with both bounds (a tuple only when a tool asks).
    pet_ids = schemas["Match"]["properties"]["pet_ids"]
    assert (pet_ids["type"], pet_ids["minItems"], pet_ids["maxItems"]) == ("array", 2, 2)
    assert "prefixItems" not in json.dumps(schemas)
    # Enums say their type.
    assert schemas["Species"]["type"] == "string"
    assert schemas["ErrorCode"]["type"] == "string"
    assert "method_not_allowed" in schemas["ErrorCode"]["enum"]
    assert set(schemas["Error"]["properties"]) >= {"code", "message", "field"}
    assert "field" not in schemas["Error"]["required"]


def test_always_present_fields_are_required_only_in_what_the_server_sends() -> None:
    schemas = contract_schemas([SwipeResult], [CompleteRequest])
    assert schemas["SwipeResult"]["required"] == ["match"]
    # CompleteRequest does not omit defaults either, but clients send it: parts optional.
    assert "parts" not in schemas["CompleteRequest"].get("required", [])


def test_a_new_area_needs_no_change_to_the_generator() -> None:
    doc = new_area_document()
    messages = doc["components"]["messages"]
    assert messages["client.newthing.start"]["summary"] == "Start a new thing."
    assert messages["server.newthing.started"]["x-durable"] is True
    assert {"name": "durable event"} in messages["server.newthing.started"]["tags"]
    assert {"name": "ephemeral event"} in messages["server.newthing.ping"]["tags"]
    assert "clientNewthingStart" in doc["operations"]
    schemas = doc["components"]["schemas"]
    assert schemas["NewThingStartOk"]["properties"]["result"] == {
        "$ref": "#/components/schemas/NewThingResult"}
    media = schemas["NewThingResult"]["properties"]["media"]
    # AsyncAPI schemas spell the discriminator as the property name.
    assert media["discriminator"] == "kind"
    assert "limit" not in schemas["NewThingStart"]["required"]
    for ref in _refs(doc):
        _resolve(doc, ref)


def test_a_struct_named_like_an_ok_reply_fails_loudly() -> None:
    class SwipeOk(Result, kw_only=True):
        x: int

    class Clash(Command, tag="clash", kw_only=True):
        result_type = SwipeOk

    with pytest.raises(ValueError, match="SwipeOk"):
        asyncapi_document(client_types=(*CLIENT_MESSAGE_TYPES, Clash))
