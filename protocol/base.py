"""Base classes of every WebSocket message, command, event and command result.

Wire rules shared by all of them:

- A message is a JSON/MessagePack object whose ``type`` field is the tag.
- Unknown fields are ignored on decode (forward compatibility).
- Optional fields whose value is ``None`` (or an empty default) are left out on
  encode. A field without a default is always on the wire, ``null`` included —
  that is how ``error.id`` and ``swipe``'s ``match`` stay present when null.
- ``msgspec.UNSET`` (update commands only) means "leave unchanged"; ``null``
  there means "clear".
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from protocol.types import Id, Seq


class Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Any WebSocket message; subclasses set ``tag=`` to their wire ``type``."""

    @classmethod
    def wire_type(cls) -> str:
        """The wire ``type`` tag of this message class."""
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str), f"{cls.__name__} has no tag"
        return tag


class Result(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``result`` object of an ``ok`` reply (not tagged)."""


class Empty(Result, kw_only=True):
    """The result of a command with nothing to return: ``{}``."""


class Command(Message, kw_only=True):
    """A client → server request. Gets exactly one ``ok`` or ``error`` reply with its ``id``.

    ``result_type`` names the Struct that ``ok.result`` holds for this command;
    a client decodes the reply with ``codec.decode_result(ok.result, cmd.result_type)``.
    """

    id: Id
    """Client-chosen, unique per connection; echoed in the reply."""

    result_type: ClassVar[type[Result]] = Empty


class Event(Message, kw_only=True):
    """A server → client notice that is not a reply. Ephemeral unless a ``DurableEvent``."""


class DurableEvent(Event, kw_only=True):
    """An event in the user's durable stream: never lost, replayed on resume, in ``seq`` order."""

    seq: Seq
    """The next number in the recipient user's stream (1, 2, 3, … without gaps)."""
