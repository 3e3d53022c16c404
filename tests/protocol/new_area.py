"""A protocol area no generator has seen: a command with a default and a tagged-union
result, a durable and an ephemeral event. The contract tests build documents with it to
show that new Structs need no change to ``protocol.schema``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from protocol.base import Command, DurableEvent, Event, Result
from protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from protocol.schema import asyncapi_document
from protocol.types import Id


class _Media(msgspec.Struct, tag_field="kind", tag="p2p", kw_only=True):
    peers: int


class _Hosted(msgspec.Struct, tag_field="kind", tag="hosted", kw_only=True):
    url: str
    token: str | None = None


class NewThingResult(Result, kw_only=True):
    media: _Media | _Hosted
    note: str | None = None


class NewThingStart(Command, tag="newthing.start", kw_only=True):
    """Start a new thing."""

    title: str
    limit: int = 5
    idempotency_key: Id | None = None
    result_type = NewThingResult


class NewThingStarted(DurableEvent, tag="newthing.started", kw_only=True):
    thing_id: Id


class NewThingPing(Event, tag="newthing.ping", kw_only=True):
    level: Literal["low", "high"]


def new_area_document() -> dict[str, Any]:
    return asyncapi_document(
        client_types=(*CLIENT_MESSAGE_TYPES, NewThingStart),
        server_types=(*SERVER_MESSAGE_TYPES, NewThingStarted, NewThingPing),
    )
