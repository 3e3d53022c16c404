"""Live streaming (PROTOCOL §10.5): rooms, live chat and reactions, WebRTC signalling.

Every event here is ephemeral and goes to the members of a stream's room (its joined
viewers and the host), not to a user's durable stream; ``live.started`` is a
``notification`` (durable) to matched users.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from protocol.base import Command, Event, Result
from protocol.objects import LiveChatMessage, LiveStream, MediaAccess, ReactionKind
from protocol.types import Cursor, Id, IdempotencyKey, PageLimit50

StreamTitle = Annotated[str, Meta(min_length=1, max_length=120)]
LiveChatBody = Annotated[str, Meta(min_length=1, max_length=500)]
"""1..500 characters; the server trims whitespace and refuses a blank body."""

SIGNAL_DATA_MAX_BYTES = 16 * 1024
"""Largest ``live.signal`` ``data``, as JSON (``too_large`` beyond)."""


# --- results -------------------------------------------------------------------------------

class StartResult(Result, kw_only=True):
    stream: LiveStream
    publish: MediaAccess
    """How the host's client sends its video."""


class StreamResult(Result, kw_only=True):
    stream: LiveStream


class StreamsResult(Result, kw_only=True):
    streams: list[LiveStream]
    """Live streams, most viewers first."""
    next_cursor: Cursor | None = None


class JoinResult(Result, kw_only=True):
    stream: LiveStream
    recent_chat: list[LiveChatMessage]
    """The last ≤ 50 chat messages, oldest first."""
    view: MediaAccess
    """How this client receives the video (the host re-joining gets its publish access)."""


class LiveChatResult(Result, kw_only=True):
    message: LiveChatMessage


# --- commands ------------------------------------------------------------------------------

class LiveStart(Command, tag="live.start", kw_only=True):
    """Go live. One live stream per user (``conflict``); matched users get a
    ``notification`` (kind ``live.started``). The calling socket joins the room."""

    title: StreamTitle
    pet_id: Id | None = None
    idempotency_key: IdempotencyKey | None = None
    result_type = StartResult


class LiveEnd(Command, tag="live.end", kw_only=True):
    """End a stream (its host or an admin); members get ``live.ended``. Repeating is a
    no-op that returns the ended stream."""

    stream_id: Id
    result_type = StreamResult


class LiveList(Command, tag="live.list", kw_only=True):
    """Live streams the caller may see, most viewers first."""

    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = StreamsResult


class LiveJoin(Command, tag="live.join", kw_only=True):
    """Join a live stream's room with this socket."""

    stream_id: Id
    result_type = JoinResult


class LiveLeave(Command, tag="live.leave", kw_only=True):
    """Leave the room with this socket (closing the socket does the same)."""

    stream_id: Id


class LiveChatCommand(Command, tag="live.chat", kw_only=True):
    """Say something in a stream's chat (the host, or a socket that joined)."""

    stream_id: Id
    body: LiveChatBody
    result_type = LiveChatResult


class LiveReact(Command, tag="live.react", kw_only=True):
    """React; members get the counts coalesced in ``live.reactions``."""

    stream_id: Id
    kind: ReactionKind


class LiveSignalCommand(Command, tag="live.signal", kw_only=True):
    """Relay opaque WebRTC signalling (SDP offer/answer, ICE candidate) between the host
    and one joined viewer, ``data`` ≤ 16 KiB as JSON."""

    stream_id: Id
    to: Id
    data: dict[str, Any]


# --- events (ephemeral, to the room) ---------------------------------------------------------

class LiveChatEvent(Event, tag="live.chat", kw_only=True):
    stream_id: Id
    message: LiveChatMessage


class LiveReactions(Event, tag="live.reactions", kw_only=True):
    """Reactions since the previous ``live.reactions``: at most one per second per stream."""

    stream_id: Id
    counts: dict[ReactionKind, Annotated[int, Meta(ge=1)]]


class LiveViewers(Event, tag="live.viewers", kw_only=True):
    """The viewer count changed: at most one every 2 s per stream."""

    stream_id: Id
    count: Annotated[int, Meta(ge=0)]


class LiveSignalEvent(Event, tag="live.signal", kw_only=True):
    """Signalling relayed from ``from`` (the host or a joined viewer)."""

    stream_id: Id
    from_: Id = msgspec.field(name="from")
    data: dict[str, Any]


class LiveEnded(Event, tag="live.ended", kw_only=True):
    """The stream ended (host, admin, host grace, or LiveKit's room finished)."""

    stream_id: Id
