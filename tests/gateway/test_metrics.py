"""Metrics a dashboard needs (issue #18 item 14), scraped from GET /metrics over HTTP after
driving real sockets: commands by type and outcome, resumes, live vs replayed events,
delivery lag, outbox bytes."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from protocol.base import Command
from protocol.messages import CLIENT_MESSAGE_TYPES
from protocol.pets import PetsMine, PetsUpdate
from protocol.session import Error, Ok
from tests.faults.helpers import Gate
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register
from tests.support.metrics import scrape
from tests.support.waiting import until
from tests.support.ws import open_session

MISSING_PET = "00000000-0000-4000-8000-000000000000"


def command_types() -> set[str]:
    """Every command type the protocol defines (the label set of ``type``)."""
    return {t.wire_type() for t in CLIENT_MESSAGE_TYPES if issubclass(t, Command)}


async def test_commands_are_counted_by_type_and_outcome(app_client: AppClient) -> None:
    client = await app_client(ws_rate_per_s=0.1, ws_rate_burst=5)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    assert isinstance(await sock.request(PetsMine(id="a")), Ok)
    assert isinstance(await sock.request(PetsMine(id="b")), Ok)
    missing = await sock.request(PetsUpdate(id="c", pet_id=MISSING_PET, name="Rex"))
    assert isinstance(missing, Error) and missing.code == "not_found"
    await sock.send_raw(json.dumps({"type": "no.such.command", "id": "d"}))
    assert (await sock.expect("error")).code == "bad_request"
    await sock.send_raw(json.dumps({"type": "pets.update", "id": "e", "pet_id": 5}))
    assert (await sock.expect("error")).code == "bad_request"
    limited = await sock.request(PetsMine(id="f"))  # the burst of 5 is spent
    assert isinstance(limited, Error) and limited.code == "rate_limited"

    metrics = await scrape(client)
    count = metrics.value
    assert count("petspark_ws_commands_total", type="pets.mine", outcome="ok") == 2
    assert count("petspark_ws_commands_total", type="pets.update", outcome="not_found") == 1
    assert count("petspark_ws_commands_total", type="invalid", outcome="bad_request") == 2
    assert count("petspark_ws_commands_total", type="pets.mine", outcome="rate_limited") == 1
    # Bounded label sets: the protocol's command types (+ invalid) and its error codes.
    assert metrics.labels("petspark_ws_commands_total", "type") <= command_types() | {"invalid"}
    assert "no.such.command" not in metrics.text


async def test_resume_attempts_are_counted_by_result(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    await events.append(client.app, [user.user_id], 2)
    await open_session(client, user.access_token)  # no resume_from: not an attempt
    await open_session(client, user.access_token, resume_from=1)
    await open_session(client, user.access_token, resume_from=99)  # beyond last_seq
    metrics = await scrape(client)
    assert metrics.value("petspark_ws_resumes_total", result="resumed") == 1
    assert metrics.value("petspark_ws_resumes_total", result="not_resumed") == 1


async def test_replayed_and_live_events_and_the_delivery_lag(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    await events.append(client.app, [user.user_id], 3)
    sock = await open_session(client, user.access_token, resume_from=0)
    for _ in range(3):
        await sock.expect("notification")
    await events.append(client.app, [user.user_id], 2)
    for _ in range(2):
        await sock.expect("notification")
    metrics = await scrape(client)
    assert metrics.value("petspark_events_delivered_total", source="replayed") == 3
    assert metrics.value("petspark_events_delivered_total", source="live") == 2
    # One observation per live event written to the socket; replays have none.
    assert metrics.value("petspark_event_delivery_lag_seconds_count") == 2
    assert 0 < metrics.value("petspark_event_delivery_lag_seconds_sum") < 60


async def test_outbox_bytes_show_what_waits_for_a_socket(app_client: AppClient) -> None:
    gate = Gate()
    client = await app_client(handlers={PetsMine: gate.handler()})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    assert (await scrape(client)).value("petspark_ws_outbox_bytes") == 0
    # While a command runs, the events for its socket wait in the outbox (after its reply).
    await sock.send(PetsMine(id="busy"))
    await until(lambda: gate.started == ["busy"], what="the command to start")
    await events.append(client.app, [user.user_id], 3, body="x" * 500)
    waiting = (await scrape(client)).value("petspark_ws_outbox_bytes")
    assert waiting > 1000  # three encoded events with a long body
    gate.open.set()
    assert (await sock.expect("ok")).id == "busy"
    for _ in range(3):
        await sock.expect("notification")
    await until(lambda: _outbox_empty(client), what="the outbox to drain")


async def _outbox_empty(client: TestClient) -> bool:
    return (await scrape(client)).value("petspark_ws_outbox_bytes") == 0


# --- protection of /metrics -------------------------------------------------------------
async def test_production_without_a_token_does_not_serve_metrics(app_client: AppClient) -> None:
    client = await app_client(environment="production")
    resp = await client.get("/metrics")
    unknown = await client.get("/no-such-route")
    assert resp.status == unknown.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert "petspark_" not in await resp.text()


async def test_a_metrics_token_is_required_when_set(app_client: AppClient) -> None:
    token = "m" * 40
    client = await app_client(environment="production", metrics_token=token)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["code"] == "unauthorized"
    metrics = await scrape(client, token=token)
    assert metrics.value("petspark_ws_connections") == 0
    assert "process_resident_memory_bytes" in metrics.text


async def test_the_token_also_guards_development(app_client: AppClient) -> None:
    client = await app_client(metrics_token="dev-token")
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={
        "Authorization": "Bearer dev-token"})).status == 200
