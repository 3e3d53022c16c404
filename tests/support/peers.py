"""pytest fixtures for the loopback protocol peers (import them into a conftest).

    from tests.support.peers import apns_server, fcm_server, test_ca, webpush_endpoint  # noqa

Each starts a real server on 127.0.0.1 for one test and stops it afterwards.
``FakeClock`` is the injectable clock providers take (``clock=``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support.apns import ApnsServer
from tests.support.fcm import FcmServer
from tests.support.smtp import SmtpServer
from tests.support.tls import TestCA
from tests.support.webpush import WebPushEndpoint


class FakeClock:
    """Wall-clock seconds that only move when told (``advance``)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StaticResolver(AbstractResolver):
    """A resolver with a fixed table, like /etc/hosts (no DNS reaches this machine).
    ``table[name] = [addresses]``; unknown names fail as a DNS miss does."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        addresses = self.table.get(host.rstrip("."))
        if not addresses:
            raise OSError(f"{host}: name not known")
        return [
            {"hostname": host, "host": a, "port": port,
             "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
            for a in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def webpush_endpoint() -> AsyncIterator[WebPushEndpoint]:
    endpoint = WebPushEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


@pytest.fixture
async def fcm_server() -> AsyncIterator[FcmServer]:
    server = FcmServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


@pytest.fixture
async def apns_server(test_ca: TestCA) -> AsyncIterator[ApnsServer]:
    server = ApnsServer(test_ca)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
