"""Per-connection memos: values a command needs every time (e.g. the caller's matched
users), read from PostgreSQL once and kept on the connection until a durable event that
may change them reaches it.

The rule (docs/architecture.md, "Per-connection memos"):

- A ``MemoKey`` names the durable event types that change its value. Every durable event
  of the connection's user that reaches this node — live from the broker
  (``Connection.on_event``) or read back by catch-up (``put_event``) — drops the values
  whose key it names; a notice without its payload (a large fan-out) drops every value.
  Those events are appended in the transaction that changes the data, to everyone whose
  value it changes, so a change committed on any node invalidates the memo on every
  node, as soon as that node hears of the event.
- A fill races with events: ``generation`` counts the events seen, and ``put`` stores a
  value only if no event arrived since the fill began (the value may predate it).
- A command that itself changes a value drops it on its own connection too (``drop``),
  so the next command on the same socket never sees the old value, even before the
  event has come back through the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class MemoKey(Generic[T]):
    """One memoised value's name and the durable event types that invalidate it."""

    __slots__ = ("name", "prefixes")

    def __init__(self, name: str, invalidated_by: Iterable[str]) -> None:
        self.name = name
        # Events are encoded by protocol.codec.JSON with the tag first: a prefix check
        # on the bytes finds the type without decoding.
        self.prefixes = tuple(b'{"type":' + msgspec.json.encode(tag) + b","
                              for tag in invalidated_by)

    def invalidated_by(self, event_json: bytes | None) -> bool:
        return event_json is None or event_json.startswith(self.prefixes)

    def __repr__(self) -> str:
        return f"MemoKey({self.name!r})"


class Memo:
    """One connection's memoised values (created with the connection's first command)."""

    __slots__ = ("_values", "generation")

    def __init__(self) -> None:
        self._values: dict[MemoKey[Any], Any] = {}
        self.generation = 0
        """Durable events seen so far; a fill begun at an older generation is not kept."""

    def get(self, key: MemoKey[T]) -> T | None:
        value: T | None = self._values.get(key)
        return value

    def put(self, key: MemoKey[T], value: T, generation: int) -> None:
        """Keep ``value``, read after ``generation`` was current, unless an event arrived
        since (it might have changed the data after the read)."""
        if generation == self.generation:
            self._values[key] = value

    def drop(self, key: MemoKey[Any]) -> None:
        """Forget one value (a command of this connection changed it)."""
        self.generation += 1
        self._values.pop(key, None)

    def on_event(self, event_json: bytes | None) -> None:
        """A durable event of this user reached the connection (None: payload unknown)."""
        self.generation += 1
        values = self._values
        if values:
            for key in [k for k in values if k.invalidated_by(event_json)]:
                del values[key]
