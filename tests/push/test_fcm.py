"""FCM HTTP v1 against a loopback OAuth + messages:send server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.credentials import ServiceAccountError, load_service_account
from server.observability.metrics import Metrics
from server.push.fcm import FcmProvider
from server.push.provider import Outcome, PushDevice, PushPayload
from tests.support.fcm import FcmServer
from tests.support.peers import FakeClock

TOKEN = "fcm-registration-token:APA91b" + "x" * 100


def phone(token: str = TOKEN) -> PushDevice:
    return PushDevice(id="phone-1", platform="fcm", token=token)


def payload(**overrides: object) -> PushPayload:
    values: dict[str, object] = {
        "kind": "chat.message", "title": "Luna", "body": "See you at the park",
        "data": {"conversation_id": "c-9"}, "unread_count": 5, "collapse_key": "chat:c-9",
        "ttl_s": 600,
    }
    values.update(overrides)
    return PushPayload(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def provider(fcm_server: FcmServer, tmp_path: Path, clock: FakeClock,
                   metrics: Metrics) -> AsyncIterator[FcmProvider]:
    fcm_server.clock = clock
    creds = fcm_server.write_credentials(tmp_path / "service-account.json")
    p = FcmProvider.from_file(creds, endpoint=fcm_server.base_url, clock=clock, metrics=metrics)
    yield p
    await p.close()


async def test_a_message_the_api_accepts_and_that_reads_back_exactly(
    provider: FcmProvider, fcm_server: FcmServer, metrics: Metrics
) -> None:
    result = await provider.send(phone(), payload())
    assert result.outcome is Outcome.SENT and result.status == 200
    assert result.provider_id == "projects/petspark-test/messages/1"
    assert fcm_server.errors == []
    [message] = fcm_server.delivered
    collapse = message["android"]["collapse_key"]
    assert message == {
        "token": TOKEN,
        "notification": {"title": "Luna", "body": "See you at the park"},
        "data": {"kind": "chat.message", "unread_count": "5",
                 "data": '{"conversation_id":"c-9"}'},
        "android": {"ttl": "600s", "priority": "high", "collapse_key": collapse,
                    "notification": {"notification_count": 5, "tag": collapse}},
        "apns": {"headers": {"apns-collapse-id": collapse}, "payload": {"aps": {"badge": 5}}},
    }
    assert json.loads(message["data"]["data"]) == {"conversation_id": "c-9"}
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "fcm", "outcome": "sent"}) == 1


async def test_one_token_request_serves_many_sends_even_at_once(
    provider: FcmProvider, fcm_server: FcmServer
) -> None:
    results = await asyncio.gather(*(provider.send(phone(), payload()) for _ in range(20)))
    assert all(r.outcome is Outcome.SENT for r in results)
    for _ in range(5):
        await provider.send(phone(), payload())
    assert fcm_server.token_requests == 1
    assert len(fcm_server.delivered) == 25


async def test_the_token_is_renewed_shortly_before_it_expires(
    provider: FcmProvider, fcm_server: FcmServer, clock: FakeClock
) -> None:
    await provider.send(phone(), payload())
    clock.advance(3600 - 400)  # more than five minutes left: still the cached one
    await provider.send(phone(), payload())
    assert fcm_server.token_requests == 1
    clock.advance(200)  # within five minutes of expiry
    await provider.send(phone(), payload())
    assert fcm_server.token_requests == 2
    assert fcm_server.errors == []


async def test_a_token_the_api_no_longer_knows_is_replaced(
    provider: FcmProvider, fcm_server: FcmServer
) -> None:
    await provider.send(phone(), payload())
    fcm_server.issued.clear()  # the server revoked it
    first = await provider.send(phone(), payload())
    assert first.outcome is Outcome.RETRY and first.status == 401
    second = await provider.send(phone(), payload())
    assert second.outcome is Outcome.SENT and fcm_server.token_requests == 2


@pytest.mark.parametrize(("kind", "reason"), [
    ("unregistered", "UNREGISTERED"), ("invalid_token", "INVALID_ARGUMENT"),
])
async def test_a_dead_token_says_remove_the_device(
    provider: FcmProvider, fcm_server: FcmServer, metrics: Metrics, kind: str, reason: str
) -> None:
    fcm_server.respond(kind)
    result = await provider.send(phone(), payload())
    assert (result.outcome, result.reason) == (Outcome.GONE, reason)
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "fcm", "outcome": "gone"}) == 1


async def test_invalid_argument_about_our_message_keeps_the_device(
    provider: FcmProvider, fcm_server: FcmServer, metrics: Metrics
) -> None:
    fcm_server.respond("invalid_payload")
    result = await provider.send(phone(), payload())
    assert (result.outcome, result.status) == (Outcome.FAILED, 400)
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "fcm", "outcome": "dropped"}) == 1


async def test_429_is_retried_after_retry_after(
    provider: FcmProvider, fcm_server: FcmServer
) -> None:
    fcm_server.respond("throttled", retry_after="30")
    result = await provider.send(phone(), payload())
    assert (result.outcome, result.status, result.retry_after_s) == (Outcome.RETRY, 429, 30)
    assert result.reason == "QUOTA_EXCEEDED"


async def test_503_is_retried(provider: FcmProvider, fcm_server: FcmServer) -> None:
    fcm_server.respond("unavailable")
    fcm_server.respond("unavailable", retry_after="12")
    first = await provider.send(phone(), payload())
    second = await provider.send(phone(), payload())
    assert (first.outcome, first.retry_after_s) == (Outcome.RETRY, None)
    assert (second.outcome, second.retry_after_s) == (Outcome.RETRY, 12)
    assert (await provider.send(phone(), payload())).outcome is Outcome.SENT


async def test_an_unreachable_token_endpoint_is_a_retry(
    fcm_server: FcmServer, tmp_path: Path
) -> None:
    creds = fcm_server.write_credentials(tmp_path / "sa.json")
    data = json.loads(creds.read_text())
    data["token_uri"] = "http://127.0.0.1:9/token"  # nothing listens on the discard port
    creds.write_text(json.dumps(data))
    provider = FcmProvider.from_file(creds, endpoint=fcm_server.base_url)
    try:
        result = await provider.send(phone(), payload())
    finally:
        await provider.close()
    assert result.outcome is Outcome.RETRY and result.reason is not None
    assert result.reason.startswith("oauth_unreachable")
    assert fcm_server.messages == []


async def test_a_token_request_refused_is_a_retry_and_logged(
    fcm_server: FcmServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    creds = fcm_server.write_credentials(tmp_path / "sa.json")
    data = json.loads(creds.read_text())
    data["client_email"] = "someone-else@other.iam.gserviceaccount.com"
    creds.write_text(json.dumps(data))
    provider = FcmProvider.from_file(creds, endpoint=fcm_server.base_url)
    try:
        result = await provider.send(phone(), payload())
    finally:
        await provider.close()
    assert result.outcome is Outcome.RETRY and result.status == 400
    assert any("FCM OAuth token refused" in r.getMessage() for r in caplog.records)
    assert fcm_server.errors and "iss" in fcm_server.errors[0]


def test_service_account_files_are_checked(tmp_path: Path, fcm_server: FcmServer) -> None:
    good = fcm_server.write_credentials(tmp_path / "good.json")
    assert load_service_account(good).project_id == "petspark-test"
    cases = {
        "missing.json": None,
        "not-json.json": "{nope",
        "wrong-type.json": json.dumps({**json.loads(good.read_text()), "type": "user"}),
        "no-key.json": json.dumps({k: v for k, v in json.loads(good.read_text()).items()
                                   if k != "private_key"}),
        "bad-key.json": json.dumps({**json.loads(good.read_text()), "private_key": "xyz"}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ServiceAccountError):
            load_service_account(path)
