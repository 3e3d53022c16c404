"""The generated AsyncAPI/OpenAPI documents are complete and JSON-serialisable."""

from __future__ import annotations

import json

from protocol import COMMANDS, EVENTS
from protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from protocol.schema import HTTP_BODIES, asyncapi_document, openapi_components, schema_ref


def test_asyncapi_is_json_and_mentions_every_tag() -> None:
    doc = asyncapi_document()
    text = json.dumps(doc)
    assert doc["asyncapi"] == "2.6.0"
    messages = doc["components"]["messages"]
    for cls in CLIENT_MESSAGE_TYPES:
        assert messages[f"client.{cls.wire_type()}"]["name"] == cls.wire_type()
    for cls in SERVER_MESSAGE_TYPES:
        assert messages[f"server.{cls.wire_type()}"]["name"] == cls.wire_type()
    for tag in [*COMMANDS, *EVENTS, "hello", "welcome", "ok", "error", "ping", "pong", "ack"]:
        assert f'"{tag}"' in text
    assert "petspark.v1.json" in text and "petspark.v1.msgpack" in text


def test_asyncapi_refs_resolve() -> None:
    doc = asyncapi_document()
    schemas = doc["components"]["schemas"]
    messages = doc["components"]["messages"]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                kind, _, name = ref.removeprefix("#/components/").partition("/")
                assert name in (schemas if kind == "schemas" else messages), ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    channel = doc["channels"]["/ws"]
    assert len(channel["publish"]["message"]["oneOf"]) == len(CLIENT_MESSAGE_TYPES)
    assert len(channel["subscribe"]["message"]["oneOf"]) == len(SERVER_MESSAGE_TYPES)


def test_schema_keeps_bounds_and_results() -> None:
    doc = asyncapi_document()
    schemas = doc["components"]["schemas"]
    assert schemas["ChatSend"]["properties"]["body"]["maxLength"] == 4000
    assert schemas["Location"]["properties"]["lat"]["maximum"] == 90
    assert doc["components"]["messages"]["client.swipe"]["x-result"] == {
        "$ref": "#/components/schemas/SwipeResult"
    }
    assert doc["components"]["messages"]["server.chat.message"]["x-durable"] is True


def test_openapi_components_cover_http_bodies() -> None:
    components = openapi_components()
    json.dumps(components)
    for body in HTTP_BODIES:
        ref = schema_ref(body)["$ref"]
        assert ref.rsplit("/", 1)[1] in components["schemas"]
    assert "User" in components["schemas"]
