"""Reconnect delays: exponential backoff with full jitter (PROTOCOL §7).

The n-th consecutive failed attempt (n = 0, 1, 2, …) waits
``uniform(0, min(cap, base * 2**n))`` seconds. The caller resets n after a
successful ``welcome``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    """Injectable for tests: only ``rng.uniform(a, b)`` is used."""

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0:
            raise ValueError("backoff base and cap must be > 0")

    def ceiling(self, attempt: int) -> float:
        """The largest delay for attempt ``attempt``: ``min(cap, base * 2**attempt)``."""
        # Cap the exponent so huge attempt counts do not overflow a float.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """A full-jitter delay for attempt ``attempt``, in seconds."""
        return float(self.rng.uniform(0, self.ceiling(attempt)))
