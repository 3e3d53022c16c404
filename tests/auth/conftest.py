from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AppClient
from tests.support.peers import smtp_server  # noqa: F401 - fixture

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(app_client: AppClient, redis_prefix: str) -> ClientMaker:
    """``await make_client(**settings_overrides)``: a test client on an app with a clean database.

    The apps of one test share a Redis prefix of their own, so rate-limit counters
    never leak from one test into another."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("redis_prefix", prefix)
        client: TestClient[Any, Any] = await app_client(**overrides)
        return client

    return factory
