"""What nodes say to each other over the broker (MessagePack, tag field ``k``).

- ``Events``: durable events that were just committed, one group per appended
  event: its JSON once (with ``"seq":0``, and where that 0 is: see
  ``stream.with_seq``) and every recipient's seq. For very large payloads the JSON
  is left out and nodes read the rows from PostgreSQL (the notice alone says
  "seq N exists").
- ``Ephemeral``: a frame for some users' sockets wherever they are (typing,
  presence). Not stored, not replayed.
- ``Kick``: close the sockets of some sessions, users or connections.
- ``Broadcast``: a node-wide notice on a named topic (e.g. "feature flags changed"),
  handed to the handler a service registered for that topic on each node
  (``Node.on_broadcast``). Best effort, like everything on the broker.

Room channels (``Broker.publish_room``) carry ``RoomMessage``s of their own:

- ``RoomFrame``: a frame for the room's members on each node that holds one
  (``user_ids``: only those users' member sockets; ``exclude_user_ids``: not theirs).
- ``RoomClose``: an optional last frame, then every member leaves the room.
"""

from __future__ import annotations

import msgspec


class EventGroup(msgspec.Struct, array_like=True, frozen=True):
    """One event appended for several users: the payload once, each user's seq."""

    template: bytes | None
    """The event as sent on the JSON sub-protocol with ``"seq":0``; None when too
    large to carry (nodes then read the users' rows from PostgreSQL)."""
    seq_at: int
    """Offset of the ``0`` of ``"seq":0`` in ``template``."""
    targets: list[tuple[str, int]]
    """(user_id, seq) for each recipient."""


class Events(msgspec.Struct, tag="ev", tag_field="k", frozen=True):
    groups: list[EventGroup]
    committed_at: float = 0.0
    """Wall time (Unix seconds) the events were committed, for the delivery-lag metric;
    0.0 from a node that does not say."""


class Ephemeral(msgspec.Struct, tag="eph", tag_field="k", frozen=True):
    user_ids: list[str]
    payload: bytes
    """The event as sent on the JSON sub-protocol."""


class Kick(msgspec.Struct, tag="kick", tag_field="k", frozen=True):
    code: int
    reason: str
    session_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    connection_ids: tuple[str, ...] = ()


class Broadcast(msgspec.Struct, tag="bc", tag_field="k", frozen=True):
    topic: str
    payload: bytes = b""
    """Opaque to the realtime layer: the topic's handler decodes it."""


BusMessage = Events | Ephemeral | Kick | Broadcast


class RoomFrame(msgspec.Struct, tag="rf", tag_field="k", frozen=True):
    payload: bytes
    """The event as sent on the JSON sub-protocol (encoded once, shared by every member)."""
    user_ids: tuple[str, ...] = ()
    """Only these users' member sockets (empty: every member)."""
    exclude_user_ids: tuple[str, ...] = ()
    """Not these users' sockets (e.g. users blocked either way with the sender)."""


class RoomClose(msgspec.Struct, tag="rc", tag_field="k", frozen=True):
    payload: bytes | None = None
    """A last frame for every member (e.g. ``live.ended``) before they leave."""


RoomMessage = RoomFrame | RoomClose

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BusMessage)


def encode(message: BusMessage) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> BusMessage:
    message: BusMessage = _decoder.decode(data)
    return message


_room_decoder = msgspec.msgpack.Decoder(RoomMessage)


def encode_room(message: RoomMessage) -> bytes:
    return _encoder.encode(message)


def decode_room(data: bytes) -> RoomMessage:
    message: RoomMessage = _room_decoder.decode(data)
    return message
