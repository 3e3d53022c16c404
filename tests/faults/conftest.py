"""Fault injection for real: a private redis-server to kill and restart, and a TCP proxy in
front of PostgreSQL to cut or stall (the app connects to the proxy's port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.proxy import TcpProxy
from tests.support.services import RedisProcess


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture
async def pg_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy to the test database (the app gets ``pg_proxy.url_for(database_url)``)."""
    proxy = await TcpProxy.for_url(database_url).start()
    yield proxy
    await proxy.close()
