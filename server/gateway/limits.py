"""Per-connection inbound limits (PROTOCOL §6, docs/protocol.md "Rate limit").

Two token buckets and one abuse window, all fed by the socket's reader with the same
``now`` (one clock read per frame, no await):

- the **frame budget** (``WS_FRAMES_PER_S``, ``WS_FRAMES_BURST``) counts every inbound
  frame — commands, ``pong``, ``ack``, WebSocket pings and pongs, bad frames;
- the **command bucket** (``WS_RATE_PER_S``, ``WS_RATE_BURST``) counts commands (and the
  frames answered with an error: bad frames, a second ``hello``);
- the **abuse window** measures the refused fraction: a window of ``WS_ABUSE_S`` opens at
  a refused frame and counts every frame; the first frame after it ended judges it —
  more than ``WS_ABUSE_REFUSED_FRACTION`` of its frames refused, and more refusals than
  the slower bucket refills over a window (``min(WS_FRAMES_PER_S, WS_RATE_PER_S) *
  WS_ABUSE_S``), is abuse
  (close 4029) — and, if refused itself, opens the next one. The buckets refilling
  between refusals (every 1/rate seconds) reset nothing, so a steady flood is caught
  however its frames are interleaved with admitted ones.
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

    __slots__ = ("_fraction", "_length", "_min_refused", "_refused", "_start", "_total")

    def __init__(self, length_s: float, refused_fraction: float, min_refused: float) -> None:
        self._length = length_s
        self._fraction = refused_fraction
        self._min_refused = min_refused
        self._start: float | None = None
        self._total = 0
        self._refused = 0

    def count(self, now: float, refused: bool) -> float | None:
        """Count one inbound frame. When it is the first after a window ended and that
        window was abusive, the window's refused fraction (for the log line); else None."""
        start = self._start
        if start is not None and now - start < self._length:
            self._total += 1
            self._refused += refused
            return None
        judged = None
        if (start is not None and self._refused > self._min_refused
                and self._refused > self._fraction * self._total):
            judged = self._refused / self._total
        if refused:
            self._start = now
            self._total = self._refused = 1
        else:
            self._start = None
        return judged


class InboundLimits:
    """One connection's frame budget, command bucket and abuse window."""

    __slots__ = ("abuse", "commands", "frames")

    def __init__(self, *, frames_per_s: float, frames_burst: int, commands_per_s: float,
                 commands_burst: int, abuse_s: float, abuse_refused_fraction: float) -> None:
        self.frames = TokenBucket(frames_per_s, frames_burst)
        self.commands = TokenBucket(commands_per_s, commands_burst)
        # Fewer refusals than the slower bucket refills over a window is never abuse: a
        # burst just over the budget, then normal traffic.
        self.abuse = AbuseWindow(abuse_s, abuse_refused_fraction,
                                 min_refused=min(frames_per_s, commands_per_s) * abuse_s)
