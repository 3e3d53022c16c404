from __future__ import annotations

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
    clean_db: None,
) -> ClientMaker:
    """``await make_client(**settings_overrides)``: a test client on an app with a clean database."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        return await aiohttp_client(create_app(make_settings(**overrides)))

    return factory
