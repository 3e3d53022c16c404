"""Presence: who of the user's matches is online."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from protocol.base import Command, Event, Result
from protocol.objects import PresenceState
from protocol.types import Id


class PresenceResult(Result, kw_only=True):
    presence: list[PresenceState]
    """In the order asked. Users the asker is not matched with are reported offline."""


class PresenceQuery(Command, tag="presence.query", kw_only=True):
    """Online state of up to 100 users."""

    user_ids: Annotated[list[Id], Meta(min_length=1, max_length=100)]
    result_type = PresenceResult


class PresenceEvent(Event, tag="presence", kw_only=True):
    """Ephemeral, to matched users: ``user_id`` came online or went offline."""

    user_id: Id
    online: bool
