"""Server messages encoded once and shared by every socket that gets them.

A ``Frame`` holds one message's JSON bytes (the wire shape, times as RFC 3339 strings)
and derives its MessagePack form lazily, on first need, so a fan-out to JSON clients
never encodes MessagePack at all.
"""

from __future__ import annotations

import msgspec

_to_msgpack = msgspec.msgpack.Encoder()


class Frame:
    """One server message encoded once per codec (MessagePack lazily, on first need)."""

    __slots__ = ("_msgpack", "json")

    def __init__(self, json: bytes) -> None:
        self.json = json
        self._msgpack: bytes | None = None

    @property
    def msgpack(self) -> bytes:
        if self._msgpack is None:
            # The JSON is already the wire shape (times as RFC 3339 strings), so a
            # generic JSON → MessagePack conversion is exact.
            self._msgpack = _to_msgpack.encode(msgspec.json.decode(self.json))
        return self._msgpack


class EventFrame(Frame):
    """A durable event for one user (its seq is that user's). ``committed_at``: the wall
    time (Unix seconds) its transaction committed, for live events (0.0 when read back)."""

    __slots__ = ("committed_at", "seq")

    def __init__(self, seq: int, json: bytes, committed_at: float = 0.0) -> None:
        super().__init__(json)
        self.seq = seq
        self.committed_at = committed_at
