from __future__ import annotations

from collections.abc import Callable

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.support.services import free_port

ClientFactory = Callable[..., TestClient]


async def test_healthz_and_readyz(aiohttp_client: ClientFactory,
                                  make_settings: Callable[..., Settings]) -> None:
    client = await aiohttp_client(create_app(make_settings()))
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}
    assert resp.headers["X-Request-Id"]


async def test_readyz_names_the_dependency_that_is_down(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("failed")


async def test_metrics_counts_requests_by_route(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis=False)))
    await client.get("/healthz")
    await client.get("/no-such-route")
    text = await (await client.get("/metrics")).text()
    assert 'petspark_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'status="404"' in text
    assert "process_resident_memory_bytes" in text
    assert "petspark_ws_connections" in text


async def test_unknown_route_is_json_404(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(redis=False)))
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
