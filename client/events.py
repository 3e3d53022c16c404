"""What ``Client.events()`` yields: the protocol's events plus ``Resync``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from protocol import AnyEvent


@dataclass(frozen=True)
class Resync:
    """Pseudo-event: a resume was asked for (``resume_from``) but the server could
    not replay everything after it (``welcome.resumed`` was false, e.g. older than
    the retention window). Refetch state with queries; durable events continue
    after ``last_seq``. Yielded in stream order, after every event received
    before it."""

    resume_from: int
    last_seq: int


ClientEvent = Union[AnyEvent, Resync]  # noqa: UP007
"""Anything ``events()`` yields."""
