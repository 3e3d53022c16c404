"""Session messages: handshake, heartbeat, acks, replies and in-band token refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from protocol.base import Command, Message, Result
from protocol.codes import ErrorCode
from protocol.types import ClientName, FieldPath, Id, Seq, Timestamp, Token


class Hello(Message, tag="hello", kw_only=True):
    """Client → server, first message of every connection.

    ``token`` authenticates clients that can set neither the header nor the cookie.
    ``resume_from: N`` asks for every durable event with ``seq > N`` before any
    live event. A second ``hello`` on a connection is answered ``bad_request``.
    """

    token: Token | None = None
    resume_from: Seq | None = None
    client: ClientName | None = None
    """Free-form client name and version, for logs (e.g. ``petspark-web/2.3.0``)."""


class Welcome(Message, tag="welcome", kw_only=True):
    """Server → client answer to a valid ``hello``; nothing else is sent before it.

    ``resumed`` is true only when ``resume_from`` was given and every event after
    it is replayed next; when false, the client refetches state and goes on from
    ``last_seq``.
    """

    session_id: Id
    """This connection's id, for logs and support; new for every connection."""
    user_id: Id
    last_seq: Seq
    """The user's latest durable seq when the welcome was sent."""
    heartbeat_s: Annotated[float, Meta(gt=0)]
    """The server pings this often; silence for twice this long means a dead link."""
    resumed: bool
    server_time: Timestamp


class Ping(Message, tag="ping", kw_only=True):
    """Server → client every ``heartbeat_s``; answer with ``pong``."""


class Pong(Message, tag="pong", kw_only=True):
    """Client → server answer to ``ping``. Any client message also proves liveness."""


class Ack(Message, tag="ack", kw_only=True):
    """Client → server: the highest durable ``seq`` processed. No reply."""

    seq: Seq


class Ok(Message, tag="ok", kw_only=True):
    """Server → client success reply to the command with the same ``id``.

    ``result`` is always an object. The server builds it from the command's
    ``result_type``; a decoded ``Ok`` holds it as ``msgspec.Raw`` (bytes in the
    connection's codec) for ``codec.decode_result(ok.result, cmd.result_type)``.
    Encode a result Struct, not ``Raw``: raw bytes are codec-specific.
    """

    id: Id
    if TYPE_CHECKING:
        result: Result | msgspec.Raw
    else:
        # msgspec reads this annotation: decode keeps the bytes, encode takes any Struct.
        result: msgspec.Raw


class Error(Message, tag="error", kw_only=True):
    """Server → client failure reply. ``id`` is the failed command's id, or ``null``
    (always present) when no id could be read from the message."""

    id: Id | None
    code: ErrorCode
    message: str
    """Human-readable; for validation errors it starts with the field path,
    e.g. ``body: at most 4000 characters``."""
    retry_after_s: Annotated[float, Meta(ge=0)] | None = None
    """With ``rate_limited``: seconds to wait before retrying."""
    field: FieldPath | None = None
    """The path of the field at fault (``body``, ``location.lat``, ``photo_ids[1]``) when
    the error is about one field; the message then starts with it."""


class AuthRefreshResult(Result, kw_only=True):
    expires_at: Timestamp
    """When the new access token expires; the connection is closed 4009 then."""


class AuthRefresh(Command, tag="auth.refresh", kw_only=True):
    """Swap the connection's access token for a fresher one (obtained over HTTP)
    before it expires, so the connection is not closed 4009. The token must be
    the same user's."""

    token: Token
    result_type = AuthRefreshResult
