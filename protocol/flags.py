"""Feature flags with percentage rollouts (PROTOCOL §10.4).

A flag's value for a user is ``enabled and bucket(key, user_id) < rollout_percent``, where
``bucket`` is stable and the same on every node and client::

    bucket = int.from_bytes(sha256(f"{key}:{user_id}".encode()).digest()[:8], "big") % 100

(``protocol.flags.rollout_bucket``). So a user inside a 10 % rollout stays inside it when
the rollout grows to 20 %, and each flag picks its own users.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from msgspec import Meta

from protocol.base import Command, Event, Result
from protocol.objects import _Object
from protocol.types import Timestamp

FlagKey = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$")]
RolloutPercent = Annotated[int, Meta(ge=0, le=100)]
FlagValues = dict[str, bool]


def rollout_bucket(key: str, user_id: str) -> int:
    """The user's bucket 0..99 for flag ``key`` (see the module docstring)."""
    digest = hashlib.sha256(f"{key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def flag_value(enabled: bool, rollout_percent: int, key: str, user_id: str) -> bool:
    """Whether the flag is on for this user."""
    return enabled and rollout_bucket(key, user_id) < rollout_percent


class Flag(_Object, kw_only=True):
    """A feature flag as admins see it."""

    key: FlagKey
    enabled: bool
    rollout_percent: RolloutPercent
    updated_at: Timestamp


class FlagResult(Result, kw_only=True):
    flag: Flag


class FlagsResult(Result, kw_only=True):
    flags: list[Flag]
    """By key."""


class FlagValuesResult(Result, kw_only=True):
    flags: FlagValues
    """Every flag's value for the caller."""


class AdminFlagsSet(Command, tag="admin.flags.set", kw_only=True):
    """Create or change a flag (admin only). Every connected socket then gets
    ``flags.updated`` with its own values, on every node."""

    key: FlagKey
    enabled: bool
    rollout_percent: RolloutPercent = 100
    result_type = FlagResult


class AdminFlagsList(Command, tag="admin.flags.list", kw_only=True):
    """Every flag (admin only)."""

    result_type = FlagsResult


class FlagsGet(Command, tag="flags.get", kw_only=True):
    """The caller's value of every flag (any user)."""

    result_type = FlagValuesResult


class FlagsUpdated(Event, tag="flags.updated", kw_only=True):
    """Ephemeral, to every socket after a flag changed: the socket's user's values of
    every flag (the same map ``flags.get`` answers)."""

    flags: FlagValues
