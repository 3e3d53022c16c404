"""What nodes say to each other over the broker (MessagePack, tag field ``k``).

- ``Events``: durable events that were just committed. ``payload`` is the event
  as sent on the JSON sub-protocol; it is None for large fan-outs, where nodes
  read the rows from PostgreSQL instead (the notice alone says "seq N exists").
- ``Ephemeral``: a frame for some users' sockets wherever they are (typing,
  presence). Not stored, not replayed.
- ``Kick``: close the sockets of some sessions, users or connections.
"""

from __future__ import annotations

import msgspec


class Events(msgspec.Struct, tag="ev", tag_field="k", frozen=True):
    items: list[tuple[str, int, bytes | None]]
    """(user_id, seq, JSON payload or None)."""


class Ephemeral(msgspec.Struct, tag="eph", tag_field="k", frozen=True):
    user_ids: list[str]
    payload: bytes
    """The event as sent on the JSON sub-protocol."""


class Kick(msgspec.Struct, tag="kick", tag_field="k", frozen=True):
    session_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    connection_ids: tuple[str, ...] = ()
    code: int = 4003
    reason: str = "revoked"


BusMessage = Events | Ephemeral | Kick

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BusMessage)


def encode(message: BusMessage) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> BusMessage:
    message: BusMessage = _decoder.decode(data)
    return message
