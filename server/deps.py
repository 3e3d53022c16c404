"""The one typed dependency bundle every area's service is built from.

The composition root (``server.app``) creates each resource in order, then one ``Deps``,
then every service from it. Services keep what they use (``self.stream =
deps.stream``); nothing reaches into the aiohttp app (no service locator).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from server.observability.metrics import Metrics
from server.realtime.node import Node
from server.realtime.presence import Presence
from server.realtime.stream import EventStream
from server.resources.outages import Outages
from server.resources.ratelimit import RateLimiter
from server.resources.storage import Storage
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    db: asyncpg.Pool
    """Plain queries; changes that append durable events use ``stream.transaction()``."""
    node: Node
    """Publish, ephemeral events, kicks; owns the stream and presence below."""
    storage: Storage
    limiter: RateLimiter
    metrics: Metrics
    redis: aioredis.Redis | None = None
    """The shared Redis client when REDIS_URL is set; None on the single-node default
    (areas that keep cross-node state there use an in-process version instead)."""

    @property
    def stream(self) -> EventStream:
        return self.node.stream

    @property
    def presence(self) -> Presence:
        return self.node.presence

    @property
    def outages(self) -> Outages:
        return self.node.outages
