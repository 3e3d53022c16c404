from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings

AppClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def app_client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clean_db: None
) -> AppClient:
    """Start an app (a node) with Settings overrides; returns its HTTP/WS test client."""

    async def factory(**overrides: Any) -> TestClient:
        client: TestClient = await aiohttp_client(create_app(make_settings(**overrides)))
        return client

    return factory
