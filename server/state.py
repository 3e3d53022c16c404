"""Typed keys for what the app holds (``app[DB]``), one place for all of them."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from server.realtime.broker import Broker
from server.realtime.hub import Hub
from server.realtime.presence import Presence
from server.realtime.stream import EventStream
from server.resources.storage import Storage
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)  # absent when REDIS_URL is unset
BROKER = web.AppKey("broker", Broker)
STORAGE = web.AppKey("storage", Storage)
BACKENDS = web.AppKey("backends", dict[str, Any])
SECRET_KEY = web.AppKey("secret_key", str)
EVENT_STREAM = web.AppKey("event_stream", EventStream)
PRESENCE = web.AppKey("presence", Presence)
HUB = web.AppKey("hub", Hub[Any])
