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


class LimitRules:
    """The node's inbound limits (from settings), shared by every connection's
    ``InboundLimits``."""

    __slots__ = ("abuse_fraction", "abuse_min_refused", "abuse_s", "commands_burst",
                 "commands_per_s", "frames_burst", "frames_per_s")

    def __init__(self, *, frames_per_s: float, frames_burst: int, commands_per_s: float,
                 commands_burst: int, abuse_s: float, abuse_refused_fraction: float) -> None:
        self.frames_per_s = frames_per_s
        self.frames_burst = float(frames_burst)
        self.commands_per_s = commands_per_s
        self.commands_burst = float(commands_burst)
        self.abuse_s = abuse_s
        self.abuse_fraction = abuse_refused_fraction
        # Fewer refusals than the slower bucket refills over a window is never abuse: a
        # burst just over the budget, then normal traffic.
        self.abuse_min_refused = min(frames_per_s, commands_per_s) * abuse_s


def _take(tokens: float, stamp: float, now: float, rate: float, burst: float
          ) -> tuple[float, float]:
    """One token from a bucket holding ``tokens`` at ``stamp``: (tokens left at ``now``,
    0.0 if allowed, else seconds until one is available)."""
    tokens += (now - stamp) * rate
    if tokens > burst:
        tokens = burst
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate


class InboundLimits:
    """One connection's frame budget, command bucket and abuse window.

    Only their state is per connection (the rules are the node's), in one object:
    thousands of idle sockets per node, so no object per bucket."""

    __slots__ = ("_abuse_refused", "_abuse_start", "_abuse_total", "_commands",
                 "_commands_at", "_frames", "_frames_at", "rules")

    def __init__(self, rules: LimitRules, now: float | None = None) -> None:
        self.rules = rules
        if now is None:
            now = time.monotonic()
        # Both buckets start full.
        self._frames = rules.frames_burst
        self._frames_at = now
        self._commands = rules.commands_burst
        self._commands_at = now
        self._abuse_start: float | None = None
        self._abuse_total = 0
        self._abuse_refused = 0

    def take_frame(self, now: float) -> float:
        """A token from the frame budget: 0.0 if allowed, else seconds until one is."""
        rules = self.rules
        self._frames, wait = _take(self._frames, self._frames_at, now, rules.frames_per_s,
                                   rules.frames_burst)
        self._frames_at = now
        return wait

    def take_command(self, now: float) -> float:
        """A token from the command bucket: 0.0 if allowed, else seconds until one is."""
        rules = self.rules
        self._commands, wait = _take(self._commands, self._commands_at, now,
                                     rules.commands_per_s, rules.commands_burst)
        self._commands_at = now
        return wait

    def count(self, now: float, refused: bool) -> float | None:
        """Count one inbound frame in the abuse window. When it is the first after a window
        ended and that window was abusive, the window's refused fraction (for the log
        line); else None."""
        start = self._abuse_start
        rules = self.rules
        if start is not None and now - start < rules.abuse_s:
            self._abuse_total += 1
            self._abuse_refused += refused
            return None
        judged = None
        if (start is not None and self._abuse_refused > rules.abuse_min_refused
                and self._abuse_refused > rules.abuse_fraction * self._abuse_total):
            judged = self._abuse_refused / self._abuse_total
        if refused:
            self._abuse_start = now
            self._abuse_total = self._abuse_refused = 1
        else:
            self._abuse_start = None
        return judged
