"""Machine-readable contracts generated from the Structs (never written by hand).

- ``asyncapi_document()``: AsyncAPI 2.6 for ``GET /asyncapi.json`` — every client
  message (``publish``) and server message (``subscribe``) on ``/ws``, both
  sub-protocols, and each command's result schema (``x-result``).
- ``openapi_components(types)``: the ``components`` object for the HTTP layer's
  ``/openapi.json``; refer to a type with ``schema_ref(tp)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from protocol.auth import (
    AuthResponse,
    ChangePasswordRequest,
    DeleteAccountRequest,
    ErrorBody,
    ForgotPasswordRequest,
    LoginRequest,
    LogoutRequest,
    MeResponse,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from protocol.base import Command, DurableEvent, Message
from protocol.codec import CODECS
from protocol.messages import CLIENT_MESSAGE_TYPES, COMMANDS, SERVER_MESSAGE_TYPES
from protocol.uploads import PresignRequest, PresignResponse, UploadResponse

REF_TEMPLATE = "#/components/schemas/{name}"

HTTP_BODIES: tuple[type[msgspec.Struct], ...] = (
    RegisterRequest,
    LoginRequest,
    RefreshRequest,
    LogoutRequest,
    AuthResponse,
    MeResponse,
    VerifyEmailRequest,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    ChangePasswordRequest,
    DeleteAccountRequest,
    ErrorBody,
    PresignRequest,
    PresignResponse,
    UploadResponse,
)
"""Every HTTP request/response body of PROTOCOL §9."""


def schema_ref(tp: type[Any]) -> dict[str, str]:
    """A JSON-schema reference to ``tp`` within ``components.schemas``."""
    return {"$ref": REF_TEMPLATE.format(name=tp.__name__)}


def openapi_components(types: Iterable[type[Any]] = HTTP_BODIES) -> dict[str, Any]:
    """The OpenAPI 3.1 ``components`` object holding the schemas of ``types`` and
    everything they refer to."""
    _, components = msgspec.json.schema_components(list(types), ref_template=REF_TEMPLATE)
    return {"schemas": components}


def _summary(cls: type[Any]) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _message_object(cls: type[Message]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": cls.wire_type(),
        "title": cls.__name__,
        "summary": _summary(cls),
        "payload": schema_ref(cls),
    }
    if issubclass(cls, Command):
        message["x-result"] = schema_ref(cls.result_type)
    if issubclass(cls, DurableEvent):
        message["x-durable"] = True
    return message


def _message_key(cls: type[Message], direction: str) -> str:
    # A tag used in both directions (chat.read, chat.typing, lost.sighting) needs two keys.
    return f"{direction}.{cls.wire_type()}"


def asyncapi_document(
    client_types: Sequence[type[Message]] = CLIENT_MESSAGE_TYPES,
    server_types: Sequence[type[Message]] = SERVER_MESSAGE_TYPES,
) -> dict[str, Any]:
    """The AsyncAPI 2.6 document of the WebSocket protocol (a JSON-serialisable dict)."""
    result_types = {cmd.result_type for cmd in COMMANDS.values()}
    all_types: list[type[Any]] = [
        *client_types,
        *server_types,
        *sorted(result_types, key=lambda t: t.__name__),
    ]
    _, schemas = msgspec.json.schema_components(all_types, ref_template=REF_TEMPLATE)

    messages: dict[str, Any] = {}
    for direction, types in (("client", client_types), ("server", server_types)):
        for cls in types:
            messages[_message_key(cls, direction)] = _message_object(cls)

    def one_of(direction: str, types: Sequence[type[Message]]) -> dict[str, Any]:
        refs = [{"$ref": f"#/components/messages/{_message_key(c, direction)}"} for c in types]
        return {"oneOf": refs}

    subprotocols = [
        {"name": c.name, "contentType": c.media_type, "frames": "binary" if c.binary else "text"}
        for c in CODECS.values()
    ]
    return {
        "asyncapi": "2.6.0",
        "id": "urn:petspark:realtime:v1",
        "info": {
            "title": "PetSpark realtime protocol",
            "version": "1",
            "description": (
                "One WebSocket per session at GET /ws. Every message is an object whose "
                "`type` is its tag. Commands get exactly one `ok` or `error` with their "
                "`id`; durable events carry `seq` and are replayed on resume. Both "
                "sub-protocols carry the same messages."
            ),
        },
        "defaultContentType": "application/json",
        "x-subprotocols": subprotocols,
        "channels": {
            "/ws": {
                "description": "The session's WebSocket.",
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Sec-WebSocket-Protocol": {
                                    "type": "string",
                                    "enum": [c.name for c in CODECS.values()],
                                    "description": "Omitted or unknown: petspark.v1.json.",
                                },
                                "Authorization": {
                                    "type": "string",
                                    "description": "Bearer <access_token> (optional).",
                                },
                            },
                        },
                    }
                },
                "publish": {
                    "operationId": "clientSends",
                    "summary": "Messages a client sends.",
                    "message": one_of("client", client_types),
                },
                "subscribe": {
                    "operationId": "serverSends",
                    "summary": "Messages the server sends.",
                    "message": one_of("server", server_types),
                },
            }
        },
        "components": {"schemas": schemas, "messages": messages},
    }
