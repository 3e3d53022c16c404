"""The position check reads the streams that moved, not every connected user's row."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from server.observability.metrics import Metrics
from server.realtime.stream import Transaction
from server.state import METRICS, RUNTIME
from tests.gateway.conftest import AppClient
from tests.realtime.test_delivery import seqs
from tests.support import events
from tests.support.auth import register
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, open_session


def rows_read(client: TestClient) -> float:
    metrics: Metrics = client.app[METRICS]
    return metrics.registry.get_sample_value("petspark_position_check_rows_total") or 0.0


async def test_a_round_reads_only_the_streams_that_moved(app_client: AppClient) -> None:
    node = await app_client(event_position_check_s=0.1)
    hub = node.app[RUNTIME].deps.node.hub
    hub.lookback_s = 0.3  # re-read streams stamped in the last 0.3 s (10 s in service)
    users = [await register(node) for _ in range(8)]
    socks: list[ProtocolSocket] = [await open_session(node, u.access_token) for u in users]
    await events.append(node.app, [u.user_id for u in users], 1)  # 8 stream rows exist
    for sock in socks:
        assert await seqs(sock, 1) == [1]
    start = rows_read(node)
    await until(lambda: rows_read(node) > start, what="a round that read the 8 rows")
    start_time = asyncio.get_running_loop().time()
    await until(lambda: asyncio.get_running_loop().time() - start_time > 0.6,
                what="the lookback window to pass")
    rounds, rows = hub.position_rounds, rows_read(node)
    await events.append(node.app, [users[0].user_id], 1)
    assert await seqs(socks[0], 1) == [2]
    await until(lambda: hub.position_rounds >= rounds + 5, what="five more rounds")
    # One stream moved (re-read each round within the lookback); 8 are connected.
    per_round = (rows_read(node) - rows) / (hub.position_rounds - rounds)
    assert 0 < per_round <= 1.0


async def test_a_stream_moved_without_a_notice_is_caught_up(app_client: AppClient) -> None:
    node = await app_client(redis=False, event_position_check_s=0.1)
    hub = node.app[RUNTIME].deps.node.hub
    user = await register(node)
    sock = await open_session(node, user.access_token)
    rounds = hub.position_rounds
    await until(lambda: hub.position_rounds > rounds + 1, what="an incremental round")
    stream = node.app[RUNTIME].deps.stream
    async with stream.pool.acquire() as conn, conn.transaction():
        # Appended without publishing (as if the notice were dropped).
        await Transaction(conn).append([user.user_id], events.notification())
    assert await seqs(sock, 1, timeout=5) == [1]
