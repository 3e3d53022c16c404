"""Per-connection inbound limits (PROTOCOL §6, docs/protocol.md "Rate limit").

Two token buckets and one abuse window, all fed by the socket's reader with the same
``now`` (one clock read per frame, no await):

- the **frame budget** (``WS_FRAMES_PER_S``, ``WS_FRAMES_BURST``) counts every inbound
  frame — commands, ``pong``, ``ack``, WebSocket pings and pongs, bad frames;
- the **command bucket** (``WS_RATE_PER_S``, ``WS_RATE_BURST``) counts commands (and the
  frames answered with an error: bad frames, a second ``hello``);
- the **abuse window** measures the refused fraction: a window of ``WS_ABUSE_S`` opens at
  a refused frame; a frame refused after it ended judges it — more than
  ``WS_ABUSE_REFUSED_FRACTION`` of the window's frames refused is abuse (close 4029) —
  and opens the next one. A frame admitted after the window ended just closes it: a
  client that slowed down is not an abuser. The bucket refilling between refusals
  (every 1/rate seconds) does not reset anything, so a steady flood is caught.
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """Take one token: 0.0 if allowed, else seconds until one is available."""
        if now is None:
            now = time.monotonic()
        tokens = self._tokens + (now - self._stamp) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self._rate


class AbuseWindow:
    """The refused fraction of a socket's inbound frames over ``length_s`` windows."""

    __slots__ = ("_fraction", "_length", "_refused", "_start", "_total")

    def __init__(self, length_s: float, refused_fraction: float) -> None:
        self._length = length_s
        self._fraction = refused_fraction
        self._start: float | None = None
        self._total = 0
        self._refused = 0

    def admitted(self, now: float) -> None:
        """One inbound frame was let through."""
        start = self._start
        if start is None:
            return
        if now - start >= self._length:
            self._start = None  # the window ended with the client back under its limits
            return
        self._total += 1

    def refused(self, now: float) -> float | None:
        """One inbound frame was refused. When that judges a window abusive, the window's
        refused fraction (for the log line); else None."""
        start = self._start
        if start is not None and now - start < self._length:
            self._total += 1
            self._refused += 1
            return None
        judged = None
        if start is not None and self._refused > self._fraction * self._total:
            judged = self._refused / self._total
        self._start = now
        self._total = self._refused = 1
        return judged

    @property
    def refused_fraction(self) -> float:
        """Of the open window so far (0.0 when none is open): for logs."""
        return self._refused / self._total if self._start is not None and self._total else 0.0


class InboundLimits:
    """One connection's frame budget, command bucket and abuse window."""

    __slots__ = ("abuse", "commands", "frames")

    def __init__(self, *, frames_per_s: float, frames_burst: int, commands_per_s: float,
                 commands_burst: int, abuse_s: float, abuse_refused_fraction: float) -> None:
        self.frames = TokenBucket(frames_per_s, frames_burst)
        self.commands = TokenBucket(commands_per_s, commands_burst)
        self.abuse = AbuseWindow(abuse_s, abuse_refused_fraction)
