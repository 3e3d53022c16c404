"""Machine-readable contracts generated from the Structs (never written by hand).

- ``asyncapi_document(ws_url)``: AsyncAPI 3.0 for ``GET /asyncapi.json`` — the ``/ws``
  channel with every message of both directions, one operation per message (the
  server's view: ``receive`` what clients send, ``send`` what it sends), each command's
  ``reply`` (its own typed ``ok`` message and ``error``, correlated by ``id``), the
  close codes of PROTOCOL §7 (``x-close-codes``) and both sub-protocols.
- ``contract_schemas(sent, received)``: the JSON schemas of Structs, as both documents
  use them; the HTTP layer's ``/openapi.json`` takes its ``components.schemas`` from it
  and refers to a type with ``schema_ref(tp)``.

The schemas say what is on the wire, so that generated clients are exact (checked with
``openapi-typescript`` and ``@asyncapi/parser`` in ``tests/gateway/test_contract_tools.py``):

- A field with a default is optional and carries no ``default`` (code generators read
  ``default`` as "always present", but an omitted field is absent on the wire); a
  non-empty default is stated in the description instead (``Absent: 20.``).
- A Struct that does not omit defaults (``SwipeResult``) has every field required when
  only the server sends it: the key is always there, ``null`` included.
- Enums have their ``type``; a tagged union's ``discriminator`` is the AsyncAPI
  schema's string form in the AsyncAPI document.

Nothing here lists messages: new Structs in the unions of ``protocol.messages`` (and
their results) appear with no change to this module.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from protocol.base import Command, DurableEvent, Event, Message
from protocol.codec import CODECS
from protocol.codes import CloseCode, should_reconnect
from protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from protocol.session import Error, Hello, Ok, Ping, Pong, Welcome

REF_TEMPLATE = "#/components/schemas/{name}"
ASYNCAPI_VERSION = "3.0.0"
COOKIE_NAME = "petspark_session"
"""The session cookie's name (``server.auth.sessions.COOKIE_NAME`` is this value)."""

Dialect = Literal["openapi", "asyncapi"]


def schema_ref(tp: type[Any]) -> dict[str, str]:
    """A JSON-schema reference to ``tp`` within ``components.schemas``."""
    return {"$ref": REF_TEMPLATE.format(name=tp.__name__)}


# --- schemas --------------------------------------------------------------------------


def _struct_infos(types: Iterable[type[Any]]) -> Iterator[mi.StructType]:
    """Every Struct reachable from ``types`` (fields, lists, unions, …)."""
    seen: set[type[Any]] = set()
    stack: list[object] = list(mi.multi_type_info(list(types)))
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif isinstance(node, mi.Field):
            stack.append(node.type)
        elif isinstance(node, mi.Type):
            if isinstance(node, mi.StructType):
                if node.cls in seen:
                    continue
                seen.add(node.cls)
                yield node
            stack.extend(getattr(node, f.name) for f in msgspec.structs.fields(node))


def _default_text(field: mi.Field) -> str | None:
    value = field.default
    if value in (msgspec.NODEFAULT, msgspec.UNSET, None) or value in ([], {}, ""):
        return None
    return f"Absent: `{msgspec.json.encode(value).decode()}`."


def _with_sentence(description: str | None, sentence: str) -> str:
    return f"{description.rstrip()} {sentence}" if description else sentence


def _fix_enums_and_unions(node: object, dialect: Dialect) -> None:
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and "type" not in node and values:
            if all(isinstance(v, str) for v in values):
                node["type"] = "string"
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                node["type"] = "integer"
        discriminator = node.get("discriminator")
        if dialect == "asyncapi" and isinstance(discriminator, dict):
            node["discriminator"] = discriminator["propertyName"]
        for value in node.values():
            _fix_enums_and_unions(value, dialect)
    elif isinstance(node, list):
        for value in node:
            _fix_enums_and_unions(value, dialect)


def contract_schemas(
    sent: Sequence[type[Any]], received: Sequence[type[Any]] = (), *,
    dialect: Dialect = "openapi",
) -> dict[str, Any]:
    """``components.schemas`` for the types the server ``sent`` and ``received`` (and
    everything they refer to), cleaned for code generators as the module says."""
    _, schemas = msgspec.json.schema_components([*sent, *received], ref_template=REF_TEMPLATE)
    inbound = {info.cls for info in _struct_infos(received)}
    for info in _struct_infos([*sent, *received]):
        schema = schemas.get(info.cls.__name__)
        if schema is None or "properties" not in schema:
            continue
        properties: dict[str, Any] = schema["properties"]
        for field in info.fields:
            prop = properties.get(field.encode_name)
            if prop is None or field.required:
                continue
            prop.pop("default", None)
            if text := _default_text(field):
                prop["description"] = _with_sentence(prop.get("description"), text)
        always_sent = not info.cls.__struct_config__.omit_defaults
        if always_sent and info.cls not in inbound:
            required = list(schema.get("required", []))
            required += [name for name in properties if name not in required]
            schema["required"] = required
    _fix_enums_and_unions(schemas, dialect)
    return schemas


# --- AsyncAPI ---------------------------------------------------------------------------


def _summary(cls: type[Any]) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _key(cls: type[Message], direction: str) -> str:
    # A tag used in both directions (chat.read, chat.typing, lost.sighting) needs two keys.
    return f"{direction}.{cls.wire_type()}"


def _ok_key(cmd: type[Command]) -> str:
    return f"server.ok.{cmd.wire_type()}"


def _operation_id(key: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", key) if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _kind(cls: type[Message]) -> str:
    if issubclass(cls, Command):
        return "command"
    if issubclass(cls, DurableEvent):
        return "durable event"
    if issubclass(cls, Event):
        return "ephemeral event"
    return "session"


_KIND_TAGS = {
    "command": "A client request; exactly one `ok` or `error` reply with its `id`.",
    "reply": "The answer to one command, correlated by `id`.",
    "durable event": "In the user's stream with a `seq`; replayed on resume, never lost.",
    "ephemeral event": "Live only (no `seq`); not replayed.",
    "session": "Connection set-up and heartbeat.",
}


def _tags(cls: type[Message], kind: str | None = None) -> list[dict[str, str]]:
    names = [kind or _kind(cls), cls.__module__.rsplit(".", 1)[-1]]
    return [{"name": name} for name in dict.fromkeys(names)]


def _message(cls: type[Message], *, correlated: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": cls.wire_type(),
        "title": cls.__name__,
        "summary": _summary(cls) or cls.wire_type(),
        "payload": schema_ref(cls),
        "tags": _tags(cls),
    }
    if correlated:
        message["correlationId"] = {"$ref": "#/components/correlationIds/commandId"}
    if issubclass(cls, Command):
        message["x-result"] = schema_ref(cls.result_type)
    if issubclass(cls, DurableEvent):
        message["x-durable"] = True
    return message


def _ok_schema(cmd: type[Command], ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"{cmd.__name__}Ok",
        "description": f"The `ok` reply to `{cmd.wire_type()}`.",
        "type": "object",
        "properties": {
            "type": ok["properties"]["type"],
            "id": ok["properties"]["id"],
            "result": schema_ref(cmd.result_type),
        },
        "required": ["type", "id", "result"],
    }


@cache
def _member_docs(cls: type[Any]) -> dict[str, str]:
    """The docstrings under an enum's members (``NAME = value`` then ``\"\"\"…\"\"\"``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, after in itertools.pairwise(body):
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[stmt.targets[0].id] = " ".join(after.value.value.split())
    return docs


def close_codes() -> dict[str, dict[str, Any]]:
    """PROTOCOL §7 as data: code → ``{name, meaning, client, reconnect}`` (``client`` is
    what a client should do; ``reconnect`` is ``should_reconnect(code)``)."""
    docs = _member_docs(CloseCode)
    out: dict[str, dict[str, Any]] = {}
    for code in CloseCode:
        meaning, _, action = docs.get(code.name, "").partition(" Client: ")
        out[str(int(code))] = {
            "name": code.name.lower(),
            "meaning": meaning,
            "client": action.rstrip("."),
            "reconnect": should_reconnect(int(code)),
        }
    return out


def _channel_bindings() -> dict[str, Any]:
    return {
        "ws": {
            "method": "GET",
            "headers": {
                "type": "object",
                "properties": {
                    "Sec-WebSocket-Protocol": {
                        "type": "string",
                        "enum": list(CODECS),
                        "description": "Omitted or unknown: petspark.v1.json.",
                    },
                    "Authorization": {
                        "type": "string",
                        "description": "`Bearer <access_token>` (optional; PROTOCOL §2).",
                    },
                    "Origin": {
                        "type": "string",
                        "description": "Must be in ALLOWED_ORIGINS when the session cookie "
                                       "authenticates (else HTTP 403 before the upgrade).",
                    },
                },
            },
            "bindingVersion": "0.1.0",
        }
    }


def _server(ws_url: str) -> dict[str, Any]:
    scheme, _, rest = ws_url.partition("://")
    host, slash, path = rest.partition("/")
    server: dict[str, Any] = {
        "host": host,
        "protocol": scheme,
        "title": "This PetSpark server",
        "description": "The server that served this document (PUBLIC_URL, else the "
                       "request's host). Every node of a deployment serves the same socket.",
        "security": [
            {"$ref": "#/components/securitySchemes/bearer"},
            {"$ref": "#/components/securitySchemes/sessionCookie"},
        ],
    }
    if slash and path:
        server["pathname"] = "/" + path.rstrip("/")
    return server


def asyncapi_document(
    ws_url: str = "ws://127.0.0.1:8080",
    client_types: Sequence[type[Message]] = CLIENT_MESSAGE_TYPES,
    server_types: Sequence[type[Message]] = SERVER_MESSAGE_TYPES,
    *,
    contact: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the WebSocket protocol (a JSON-serialisable dict).
    ``ws_url`` is the server's base (``ws://host:port``); ``contact`` the ``info.contact``."""
    commands = [c for c in client_types if issubclass(c, Command)]
    results = sorted({c.result_type for c in commands}, key=lambda t: t.__name__)
    sent = [t for t in server_types if t is not Ok]
    schemas = contract_schemas([*sent, *results, Ok], client_types, dialect="asyncapi")
    ok_schema = schemas.pop(Ok.__name__)
    for cmd in commands:
        name = f"{cmd.__name__}Ok"
        if name in schemas:
            raise ValueError(f"{name}: a Struct has the name of {cmd.wire_type()}'s ok reply")
        schemas[name] = _ok_schema(cmd, ok_schema)

    messages: dict[str, Any] = {}
    for cls in client_types:
        messages[_key(cls, "client")] = _message(cls, correlated=issubclass(cls, Command))
    for cls in sent:
        messages[_key(cls, "server")] = _message(cls, correlated=cls is Error)
    for cmd in commands:
        messages[_ok_key(cmd)] = {
            "name": Ok.wire_type(),
            "title": f"{cmd.__name__}Ok",
            "summary": f"The reply to `{cmd.wire_type()}`: `ok` with its result.",
            "payload": {"$ref": REF_TEMPLATE.format(name=f"{cmd.__name__}Ok")},
            "correlationId": {"$ref": "#/components/correlationIds/commandId"},
            "tags": _tags(cmd, "reply"),
        }

    channel_ref = {"$ref": "#/channels/ws"}

    def in_channel(key: str) -> dict[str, str]:
        return {"$ref": f"#/channels/ws/messages/{key}"}

    operations: dict[str, Any] = {}
    for cls in client_types:
        key = _key(cls, "client")
        op: dict[str, Any] = {
            "action": "receive",
            "channel": channel_ref,
            "summary": f"A client sends `{cls.wire_type()}`.",
            "messages": [in_channel(key)],
            "tags": _tags(cls),
        }
        if issubclass(cls, Command):
            op["reply"] = {"channel": channel_ref,
                           "messages": [in_channel(_ok_key(cls)), in_channel("server.error")]}
        elif cls is Hello and Welcome in sent:
            op["reply"] = {"channel": channel_ref, "messages": [in_channel("server.welcome")]}
        operations[_operation_id(key)] = op
    for cls in sent:
        key = _key(cls, "server")
        op = {
            "action": "send",
            "channel": channel_ref,
            "summary": (f"The server sends `{cls.wire_type()}`" + (
                " (the reply to a failed command, or to a frame that could not be read: "
                "`id` null)." if cls is Error else ".")),
            "messages": [in_channel(key)],
            "tags": _tags(cls),
        }
        if cls is Ping and Pong in client_types:
            op["reply"] = {"channel": channel_ref, "messages": [in_channel("client.pong")]}
        operations[_operation_id(key)] = op

    subprotocols = [
        {"name": c.name, "contentType": c.media_type, "frames": "binary" if c.binary else "text"}
        for c in CODECS.values()
    ]
    info: dict[str, Any] = {
        "title": "PetSpark realtime protocol",
        "version": "1",
        "description": (
            "One WebSocket per session at GET /ws (PROTOCOL sections 1 to 8). Every message is an "
            "object whose `type` is its tag. The first client message is `hello`; the "
            "server answers `welcome`. Commands get exactly one `ok` or `error` with "
            "their `id` (each command operation's `reply`); durable events carry `seq` "
            "and are replayed on resume. Both sub-protocols (`x-subprotocols`: JSON text "
            "frames, MessagePack binary frames) carry the same messages. Close codes are "
            "in the channel's `x-close-codes`. This document describes the server: it "
            "`receive`s what clients send and `send`s the rest."
        ),
        "license": {"name": "Proprietary (all rights reserved)"},
        "tags": [{"name": name, "description": text} for name, text in _KIND_TAGS.items()],
    }
    if contact:
        info["contact"] = contact
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:petspark:realtime:v1",
        "info": info,
        "defaultContentType": "application/json",
        "x-subprotocols": subprotocols,
        "servers": {"petspark": _server(ws_url)},
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "The session socket",
                "description": (
                    "The session's WebSocket. Refusals before the upgrade are HTTP: 400 "
                    "(not an upgrade), 403 (a cookie-authenticated upgrade whose Origin is "
                    "not allowed), 503 (the server is shutting down); every other refusal "
                    "is a close code after the upgrade (`x-close-codes`)."
                ),
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
                "bindings": _channel_bindings(),
                "x-close-codes": close_codes(),
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "correlationIds": {
                "commandId": {
                    "description": "A command's `id`, echoed by its `ok` or `error` reply.",
                    "location": "$message.payload#/id",
                }
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer <access_token>` on the upgrade "
                                   "(native apps). Clients that can set neither header nor "
                                   "cookie send `hello.token` instead.",
                },
                "sessionCookie": {
                    "type": "httpApiKey", "in": "cookie", "name": COOKIE_NAME,
                    "description": "The session cookie of the HTTP auth routes (browsers).",
                },
            },
        },
    }


def for_server(document: dict[str, Any], ws_url: str,
               contact: dict[str, str] | None = None) -> dict[str, Any]:
    """A copy of an AsyncAPI ``document`` whose server is ``ws_url`` (and ``info.contact``
    ``contact``), sharing the rest: the cached document is never changed."""
    info = {**document["info"], "contact": contact} if contact else document["info"]
    return {**document, "info": info, "servers": {"petspark": _server(ws_url)}}


__all__ = [
    "ASYNCAPI_VERSION",
    "COOKIE_NAME",
    "REF_TEMPLATE",
    "asyncapi_document",
    "close_codes",
    "contract_schemas",
    "for_server",
    "schema_ref",
]
