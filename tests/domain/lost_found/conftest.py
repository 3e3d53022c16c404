from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.gateway.conftest import AppClient


@pytest.fixture
def app_client(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clean_db: None
) -> AppClient:
    """As tests/gateway's, but these tests register many users from one address."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("auth_register_per_hour", 1_000_000)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(make_settings(**overrides)))
        return client

    return factory
