"""APNs against a loopback HTTP/2 server (raw h2 over TLS with a test CA)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.credentials import ApnsKeyError, load_apns_key
from server.observability.metrics import Metrics
from server.push.apns import ApnsProvider
from server.push.provider import Outcome, PushDevice, PushPayload
from tests.support.apns import ApnsServer
from tests.support.peers import FakeClock
from tests.support.tls import TestCA

TOKEN = "a1b2c3d4" * 8  # 64 hex digits, like an iPhone's


def iphone(token: str = TOKEN) -> PushDevice:
    return PushDevice(id="iphone-1", platform="apns", token=token)


def payload(**overrides: object) -> PushPayload:
    values: dict[str, object] = {
        "kind": "match.new", "title": "It's a match!", "body": "Rex and Luna like each other",
        "data": {"match_id": "m-1"}, "unread_count": 2, "collapse_key": "match:m-1",
        "ttl_s": 3600,
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
async def provider(apns_server: ApnsServer, test_ca: TestCA, tmp_path: Path,
                   clock: FakeClock, metrics: Metrics) -> AsyncIterator[ApnsProvider]:
    apns_server.clock = clock
    key_file = apns_server.write_key(tmp_path / "AuthKey.p8")
    p = ApnsProvider.from_file(
        key_file, key_id=apns_server.key_id, team_id=apns_server.team_id,
        topic=apns_server.topic, endpoint=apns_server.base_url,
        ssl_context=test_ca.client_context(), clock=clock, metrics=metrics,
    )
    yield p
    await p.close()


async def test_a_push_the_server_accepts_over_http2(
    provider: ApnsProvider, apns_server: ApnsServer, clock: FakeClock, metrics: Metrics
) -> None:
    result = await provider.send(iphone(), payload())
    assert result.outcome is Outcome.SENT and result.status == 200
    assert apns_server.errors == []
    [request] = apns_server.delivered
    assert request.device_token == TOKEN
    assert result.provider_id == request.headers["apns-id"]  # echoed back
    assert request.headers["apns-topic"] == "com.petspark.app"
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "10"
    assert request.headers["apns-expiration"] == str(int(clock.now) + 3600)
    assert request.headers["apns-collapse-id"] == "match:m-1"
    assert request.body == {
        "aps": {"alert": {"title": "It's a match!", "body": "Rex and Luna like each other"},
                "badge": 2, "sound": "default", "thread-id": "match:m-1"},
        "kind": "match.new", "data": {"match_id": "m-1"}, "unread_count": 2,
    }
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "apns", "outcome": "sent"}) == 1


async def test_many_pushes_share_one_connection_and_one_jwt(
    provider: ApnsProvider, apns_server: ApnsServer
) -> None:
    results = await asyncio.gather(*(provider.send(iphone(), payload()) for _ in range(10)))
    assert all(r.outcome is Outcome.SENT for r in results)
    assert len(set(apns_server.tokens_seen)) == 1
    assert apns_server.connections == 1  # multiplexed HTTP/2 streams


async def test_the_jwt_is_renewed_after_50_minutes_not_before(
    provider: ApnsProvider, apns_server: ApnsServer, clock: FakeClock
) -> None:
    await provider.send(iphone(), payload())
    clock.advance(49 * 60)
    await provider.send(iphone(), payload())
    first, second = apns_server.tokens_seen
    assert first == second
    clock.advance(2 * 60)  # 51 minutes after it was made
    await provider.send(iphone(), payload())
    assert apns_server.tokens_seen[2] != first
    assert apns_server.errors == []  # the server never saw a token older than an hour


async def test_410_says_remove_the_device(
    provider: ApnsProvider, apns_server: ApnsServer, metrics: Metrics
) -> None:
    apns_server.respond(410)
    result = await provider.send(iphone(), payload())
    assert (result.outcome, result.status, result.reason) == (
        Outcome.GONE, 410, "Unregistered")
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "apns", "outcome": "gone"}) == 1


async def test_429_is_retried_after_retry_after(
    provider: ApnsProvider, apns_server: ApnsServer
) -> None:
    apns_server.respond(429, retry_after="20")
    apns_server.respond(429)
    first = await provider.send(iphone(), payload())
    second = await provider.send(iphone(), payload())
    assert (first.outcome, first.status, first.retry_after_s) == (Outcome.RETRY, 429, 20)
    assert first.reason == "TooManyRequests"
    assert (second.outcome, second.retry_after_s) == (Outcome.RETRY, None)


async def test_5xx_is_retried(provider: ApnsProvider, apns_server: ApnsServer) -> None:
    apns_server.respond(500)
    apns_server.respond(503, reason="ServiceUnavailable")
    assert (await provider.send(iphone(), payload())).outcome is Outcome.RETRY
    assert (await provider.send(iphone(), payload())).outcome is Outcome.RETRY
    assert (await provider.send(iphone(), payload())).outcome is Outcome.SENT


async def test_an_expired_provider_token_is_replaced_and_retried(
    provider: ApnsProvider, apns_server: ApnsServer
) -> None:
    await provider.send(iphone(), payload())
    apns_server.respond(403, reason="ExpiredProviderToken")
    result = await provider.send(iphone(), payload())
    assert (result.outcome, result.reason) == (Outcome.RETRY, "ExpiredProviderToken")
    assert (await provider.send(iphone(), payload())).outcome is Outcome.SENT
    tokens = apns_server.tokens_seen
    assert tokens[0] == tokens[1] != tokens[2]


async def test_bad_device_token_fails_without_removing_the_device(
    provider: ApnsProvider, apns_server: ApnsServer
) -> None:
    apns_server.respond(400, reason="BadDeviceToken")
    result = await provider.send(iphone(), payload())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "BadDeviceToken")


async def test_a_malformed_token_is_gone_without_a_request(
    provider: ApnsProvider, apns_server: ApnsServer
) -> None:
    result = await provider.send(iphone("not/hex?"), payload())
    assert result.outcome is Outcome.GONE
    assert apns_server.requests == []


async def test_an_untrusted_certificate_is_refused(
    apns_server: ApnsServer, tmp_path: Path
) -> None:
    """Without the test CA the TLS handshake fails: certificates are verified."""
    provider = ApnsProvider.from_file(
        apns_server.write_key(tmp_path / "k.p8"), key_id=apns_server.key_id,
        team_id=apns_server.team_id, topic=apns_server.topic, endpoint=apns_server.base_url,
    )
    try:
        result = await provider.send(iphone(), payload())
    finally:
        await provider.close()
    assert result.outcome is Outcome.RETRY and result.reason is not None
    assert result.reason.startswith("network")
    assert apns_server.requests == []


def test_key_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ApnsKeyError, match="cannot read"):
        load_apns_key(tmp_path / "missing.p8")
    (tmp_path / "junk.p8").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(ApnsKeyError, match="not a PEM"):
        load_apns_key(tmp_path / "junk.p8")
