"""Web Push against a loopback endpoint that verifies VAPID and decrypts like a browser."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization

from server.observability.metrics import Metrics
from server.push.provider import Outcome, PushDevice, PushPayload, WebPushSubscription
from server.push.vapid import generate_key, load_vapid_key
from server.push.webpush import WebPushProvider
from tests.support.peers import FakeClock
from tests.support.webpush import WebPushEndpoint

SUBJECT = "mailto:push-admin@petspark.example"


def device(sub: WebPushSubscription, device_id: str = "dev-1") -> PushDevice:
    return PushDevice(id=device_id, platform="webpush", subscription=sub)


def chat_payload(**overrides: object) -> PushPayload:
    values: dict[str, object] = {
        "kind": "chat.message", "title": "Biscuit", "body": "Walk at 6? 🐕",
        "data": {"conversation_id": "c-42", "message_id": "m-7"}, "unread_count": 3,
        "collapse_key": "chat:c-42", "ttl_s": 3600,
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
async def provider(clock: FakeClock, metrics: Metrics) -> AsyncIterator[WebPushProvider]:
    private, _ = generate_key()
    p = WebPushProvider(private, SUBJECT, allow_private=True, metrics=metrics, clock=clock)
    yield p
    await p.close()


def count(metrics: Metrics, provider: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": provider, "outcome": outcome})
    return value or 0.0


async def test_the_browser_decrypts_exactly_the_payload(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint, metrics: Metrics
) -> None:
    webpush_endpoint.expected_subject = SUBJECT
    webpush_endpoint.expected_public_key = provider.public_key()
    sub = webpush_endpoint.subscribe()
    result = await provider.send(device(sub), chat_payload())
    assert result.outcome is Outcome.SENT and result.status == 201
    assert result.provider_id and "/message/" in result.provider_id
    assert webpush_endpoint.errors == []
    [got] = webpush_endpoint.for_browser(sub)
    assert got.payload == {
        "kind": "chat.message", "title": "Biscuit", "body": "Walk at 6? 🐕",
        "data": {"conversation_id": "c-42", "message_id": "m-7"}, "unread_count": 3,
    }
    assert got.headers["TTL"] == "3600"
    assert got.headers["Content-Encoding"] == "aes128gcm"
    # "chat:c-42" has a character RFC 8030 forbids in Topic: a stable hash stands in.
    topic = got.headers["Topic"]
    assert len(topic) <= 32 and topic.replace("-", "").replace("_", "").isalnum()
    assert got.vapid_claims is not None and got.vapid_claims["sub"] == SUBJECT
    assert got.vapid_claims["aud"] == webpush_endpoint.base_url
    assert count(metrics, "webpush", "sent") == 1


async def test_one_conversation_one_topic_another_conversation_another(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    for key in ("chat:c-1", "chat:c-1", "chat:c-2"):
        assert (await provider.send(device(sub), chat_payload(collapse_key=key))).outcome \
            is Outcome.SENT
    topics = [a.headers["Topic"] for a in webpush_endpoint.for_browser(sub)]
    assert topics[0] == topics[1] != topics[2]
    short = await provider.send(device(sub), chat_payload(collapse_key="conv_42"))
    assert short.outcome is Outcome.SENT
    assert webpush_endpoint.for_browser(sub)[-1].headers["Topic"] == "conv_42"


async def test_a_long_body_is_shortened_to_fit_a_push(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    body = "woof " * 900  # 4,500 characters: more than a push can carry
    result = await provider.send(device(sub), chat_payload(body=body))
    assert result.outcome is Outcome.SENT
    [got] = webpush_endpoint.for_browser(sub)
    assert got.payload is not None
    assert got.payload["body"].endswith("…") and len(got.payload["body"]) <= 1000
    assert len(json.dumps(got.payload, ensure_ascii=False).encode()) <= 3072


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_subscriptions_say_remove_the_device(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint, metrics: Metrics, status: int
) -> None:
    sub = webpush_endpoint.subscribe()
    webpush_endpoint.respond(status)
    result = await provider.send(device(sub), chat_payload())
    assert result.outcome is Outcome.GONE and result.status == status
    assert count(metrics, "webpush", "gone") == 1


async def test_an_unknown_subscription_is_gone(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    del webpush_endpoint.browsers[sub.endpoint.rsplit("/", 1)[1]]  # the browser unsubscribed
    assert (await provider.send(device(sub), chat_payload())).outcome is Outcome.GONE


async def test_429_is_retried_after_the_providers_retry_after(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint, metrics: Metrics
) -> None:
    sub = webpush_endpoint.subscribe()
    webpush_endpoint.respond(429, retry_after="7")
    result = await provider.send(device(sub), chat_payload())
    assert result.outcome is Outcome.RETRY and result.retry_after_s == 7
    assert count(metrics, "webpush", "retry") == 1
    # The next attempt goes through (the endpoint decrypted both).
    assert (await provider.send(device(sub), chat_payload())).outcome is Outcome.SENT
    assert len(webpush_endpoint.attempts) == 2 and webpush_endpoint.errors == []


async def test_5xx_is_retried_with_or_without_retry_after(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    webpush_endpoint.respond(500)
    webpush_endpoint.respond(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # in the past
    first = await provider.send(device(sub), chat_payload())
    second = await provider.send(device(sub), chat_payload())
    assert (first.outcome, first.retry_after_s) == (Outcome.RETRY, None)
    assert (second.outcome, second.retry_after_s) == (Outcome.RETRY, 0)


async def test_a_redirect_is_not_followed(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    other = webpush_endpoint.subscribe()
    webpush_endpoint.respond(307, location=other.endpoint)
    result = await provider.send(device(sub), chat_payload())
    assert result.outcome is Outcome.FAILED and result.status == 307
    assert len(webpush_endpoint.attempts) == 1


async def test_the_vapid_header_is_signed_once_per_origin_and_renewed_before_it_expires(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint, clock: FakeClock
) -> None:
    sub = webpush_endpoint.subscribe()
    for _ in range(3):
        await provider.send(device(sub), chat_payload())
    auths = {a.headers["Authorization"] for a in webpush_endpoint.attempts}
    assert len(auths) == 1
    clock.advance(10 * 3600)  # still more than an hour before its 12 h expiry
    await provider.send(device(sub), chat_payload())
    assert webpush_endpoint.attempts[-1].headers["Authorization"] in auths
    clock.advance(1.5 * 3600)
    await provider.send(device(sub), chat_payload())
    # The new header's exp counts from the fake clock; the endpoint checks the real time,
    # so only compare the tokens here.
    assert webpush_endpoint.attempts[-1].headers["Authorization"] not in auths


async def test_broken_subscription_keys_are_gone_not_sent(
    provider: WebPushProvider, webpush_endpoint: WebPushEndpoint
) -> None:
    sub = webpush_endpoint.subscribe()
    bad = WebPushSubscription(endpoint=sub.endpoint, keys=type(sub.keys)(
        p256dh="AAAA", auth=sub.keys.auth))
    result = await provider.send(device(bad), chat_payload())
    assert result.outcome is Outcome.GONE and result.reason is not None
    assert "p256dh" in result.reason
    assert webpush_endpoint.attempts == []


async def test_a_stopped_endpoint_is_a_retry(provider: WebPushProvider) -> None:
    endpoint = WebPushEndpoint()
    await endpoint.start()
    sub = endpoint.subscribe()
    await endpoint.stop()
    result = await provider.send(device(sub), chat_payload())
    assert result.outcome is Outcome.RETRY and result.reason is not None
    assert result.reason.startswith("network")


def test_public_key_is_the_uncompressed_point_of_the_private_key() -> None:
    private, public = generate_key()
    provider = WebPushProvider(private, SUBJECT)
    assert provider.public_key() == public
    assert len(public) == 87 and "=" not in public  # 65 bytes, URL-safe base64


async def test_a_pem_key_works_the_same(webpush_endpoint: WebPushEndpoint) -> None:
    private, public = generate_key()
    pem = load_vapid_key(private).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    for value in (pem, pem.replace("\n", "\\n")):  # real newlines or escaped in one line
        provider = WebPushProvider(value, SUBJECT, allow_private=True)
        try:
            assert provider.public_key() == public
            webpush_endpoint.expected_public_key = public
            sub = webpush_endpoint.subscribe()
            assert (await provider.send(device(sub), chat_payload())).outcome is Outcome.SENT
        finally:
            await provider.close()
    assert webpush_endpoint.errors == []
