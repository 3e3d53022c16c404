from __future__ import annotations

from protocol.messages import COMMANDS, EVENTS
from tests.gateway.conftest import AppClient


async def test_asyncapi_is_generated_from_the_protocol(app_client: AppClient) -> None:
    client = await app_client()
    resp = await client.get("/asyncapi.json")
    assert resp.status == 200
    text = await resp.text()
    for tag in [*COMMANDS, *EVENTS, "hello", "welcome", "ping", "pong", "ack", "ok", "error"]:
        assert f'"{tag}"' in text, tag
