"""Per-connection token bucket for inbound commands (PROTOCOL §6)."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_stamp", "_tokens", "limited_since")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self.limited_since: float | None = None
        """When the current unbroken run of refusals began (for the 4029 rule)."""

    def take(self) -> float:
        """Take one token: 0.0 if allowed, else seconds until one is available."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.limited_since = None
            return 0.0
        if self.limited_since is None:
            self.limited_since = now
        return (1.0 - self._tokens) / self._rate

    def limited_for(self) -> float:
        return 0.0 if self.limited_since is None else time.monotonic() - self.limited_since
