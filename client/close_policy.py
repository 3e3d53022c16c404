"""What the client does after a connection ends, by close code (PROTOCOL §7).

A pure function so the whole table is readable in one place and testable
without sockets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol import CloseCode, should_reconnect


class Action(enum.Enum):
    STOP = "stop"
    """Give up: ``events()`` and pending commands raise ``ConnectionClosed``."""
    RECONNECT_NOW = "reconnect_now"
    """Reconnect without waiting (1001; 4001/4009 with a fresh token)."""
    RECONNECT_BACKOFF = "reconnect_backoff"
    """Reconnect after a full-jitter backoff delay."""


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: str


def plan_after_close(code: int, *, has_token_provider: bool, auth_retry_used: bool) -> Plan:
    """The plan after the connection ended with ``code``.

    ``auth_retry_used``: a 4001 already led to one retry with a new token since the
    last ``welcome`` (a second 4001 in a row stops the client).
    """
    if code == CloseCode.GOING_AWAY:
        return Plan(Action.RECONNECT_NOW, "server going away: reconnect at once, with resume")
    if code == CloseCode.NOT_AUTHENTICATED:
        if has_token_provider and not auth_retry_used:
            return Plan(Action.RECONNECT_NOW, "not authenticated: one retry with a new token")
        return Plan(Action.STOP, "not authenticated")
    if code == CloseCode.TOKEN_EXPIRED:
        if has_token_provider:
            return Plan(Action.RECONNECT_NOW, "token expired: reconnect with a new token")
        # Reconnecting with the expired token could only end in 4001.
        return Plan(Action.STOP, "token expired and no token_provider")
    if not should_reconnect(code):
        return Plan(Action.STOP, f"close code {code} cannot be fixed by reconnecting")
    return Plan(Action.RECONNECT_BACKOFF, f"close code {code}: reconnect with backoff")
