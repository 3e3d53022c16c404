from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    make_settings: Callable[..., Settings],
    redis_prefix: str,
    clean_db: None,
) -> ClientMaker:
    """``await make_client(**settings_overrides)``: a test client on an app with a clean database.

    The apps of one test share a Redis prefix of their own, so rate-limit counters
    never leak from one test into another."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("redis_prefix", prefix)
        return await aiohttp_client(create_app(make_settings(**overrides)))

    return factory
