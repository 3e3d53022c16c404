"""The SSRF guard of §10.7: at registration and again at send time."""

from __future__ import annotations

import ipaddress

import pytest

from server.push.guard import (
    EndpointRefused,
    PublicOnlyResolver,
    RefusedAddress,
    address_is_public,
    check_endpoint,
)
from server.push.provider import Outcome, PushDevice, PushPayload, WebPushSubscription
from server.push.vapid import generate_key
from server.push.webpush import WebPushProvider
from tests.support.peers import StaticResolver
from tests.support.webpush import WebPushEndpoint

PUBLIC = "93.184.215.14"  # a public address; nothing here ever connects to it


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
    "fd12:3456::1", "ff02::1", "2001:db8::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::", "2002:a00:1::", "64:ff9b::a00:1", "64:ff9b::7f00:1",
])
def test_non_public_addresses(address: str) -> None:
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e",
    "::ffff:8.8.8.8", "2002:808:808::", "64:ff9b::808:808",
])
def test_public_addresses(address: str) -> None:
    assert address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(("endpoint", "message"), [
    ("http://push.example.com/x", "must be an https URL"),
    ("ftp://push.example.com/x", "must be an https URL"),
    ("/relative/path", "must be an https URL"),
    ("https:///nohost", "must be an https URL"),
    ("https://user:pw@push.example.com/x", "must not carry credentials"),
    ("https://127.0.0.1/x", "public addresses only"),
    ("https://[::1]:8443/x", "public addresses only"),
    ("https://[::ffff:10.0.0.1]/x", "public addresses only"),
    ("https://169.254.169.254/latest/meta-data", "public addresses only"),
    ("https://intranet.example.com/x", "public addresses only"),
    ("https://mixed.example.com/x", "public addresses only"),
    ("https://nowhere.example.com/x", "does not resolve"),
    ("https://push.example.com/" + "a" * 2100, "at most 2048 characters"),
])
async def test_registration_refuses(endpoint: str, message: str) -> None:
    resolver = StaticResolver({
        "push.example.com": [PUBLIC], "intranet.example.com": ["10.1.2.3"],
        "mixed.example.com": [PUBLIC, "127.0.0.1"],
    })
    with pytest.raises(EndpointRefused) as info:
        await check_endpoint(endpoint, allow_private=False, resolver=resolver)
    assert info.value.message.startswith("subscription.endpoint: ")
    assert message in info.value.message
    assert info.value.code == "bad_request"


async def test_registration_resolves_real_names_too() -> None:
    # "localhost" comes from this machine's resolver (/etc/hosts): a loopback address.
    with pytest.raises(EndpointRefused, match="public addresses only"):
        await check_endpoint("https://localhost/push/x", allow_private=False)


async def test_registration_accepts_a_public_https_endpoint() -> None:
    resolver = StaticResolver({"fcm.googleapis.com": [PUBLIC, "2a00:1450:4001::200e"]})
    await check_endpoint("https://fcm.googleapis.com/fcm/send/abc:def", allow_private=False,
                         resolver=resolver)
    await check_endpoint(f"https://{PUBLIC}:8443/push", allow_private=False)
    assert resolver.lookups == ["fcm.googleapis.com"]


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.1:9/push/x", "https://localhost/x", "http://10.0.0.1/x",
    "https://intranet.example.com/x",
])
async def test_the_test_flag_allows_http_and_private(endpoint: str) -> None:
    await check_endpoint(endpoint, allow_private=True, resolver=StaticResolver())


async def test_the_flag_still_refuses_what_is_not_a_push_url() -> None:
    for endpoint in ("ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        with pytest.raises(EndpointRefused):
            await check_endpoint(endpoint, allow_private=True)


# --- send time -----------------------------------------------------------------------------

def _payload() -> PushPayload:
    return PushPayload(kind="match.new", title="New match", body="Rex likes you too")


def _device(sub: WebPushSubscription) -> PushDevice:
    return PushDevice(id="d1", platform="webpush", subscription=sub)


async def test_send_time_refuses_a_name_that_now_resolves_to_loopback(
    webpush_endpoint: WebPushEndpoint,
) -> None:
    """DNS rebinding: public at registration, loopback when the push goes out."""
    resolver = StaticResolver({"push.example.com": [PUBLIC]})
    sub = webpush_endpoint.subscribe(f"https://push.example.com:{webpush_endpoint.port}")
    await check_endpoint(sub.endpoint, allow_private=False, resolver=resolver)  # accepted
    resolver.table["push.example.com"] = ["127.0.0.1"]
    provider = WebPushProvider(generate_key()[0], "mailto:a@b.example", resolver=resolver)
    try:
        result = await provider.send(_device(sub), _payload())
    finally:
        await provider.close()
    assert (result.outcome, result.reason) == (Outcome.FAILED, "endpoint_refused")
    assert resolver.lookups[-1] == "push.example.com"
    assert webpush_endpoint.attempts == []


async def test_send_time_refuses_loopback_by_name_and_by_literal(
    webpush_endpoint: WebPushEndpoint,
) -> None:
    """Without the flag even an endpoint that slipped past registration gets nothing.
    The literal case is the socket factory's: aiohttp never asks a resolver for it."""
    provider = WebPushProvider(generate_key()[0], "mailto:a@b.example")
    try:
        for origin in (f"https://localhost:{webpush_endpoint.port}",
                       f"https://127.0.0.1:{webpush_endpoint.port}",
                       f"https://[::ffff:127.0.0.1]:{webpush_endpoint.port}"):
            sub = webpush_endpoint.subscribe(origin)
            result = await provider.send(_device(sub), _payload())
            assert (result.outcome, result.reason) == (Outcome.FAILED, "endpoint_refused"), \
                origin
    finally:
        await provider.close()
    assert webpush_endpoint.attempts == []


async def test_send_time_refuses_http_without_the_flag(
    webpush_endpoint: WebPushEndpoint,
) -> None:
    provider = WebPushProvider(generate_key()[0], "mailto:a@b.example")
    try:
        result = await provider.send(_device(webpush_endpoint.subscribe()), _payload())
    finally:
        await provider.close()
    assert result.outcome is Outcome.GONE and result.reason is not None
    assert "https" in result.reason
    assert webpush_endpoint.attempts == []


async def test_with_the_flag_loopback_http_is_delivered(
    webpush_endpoint: WebPushEndpoint,
) -> None:
    provider = WebPushProvider(generate_key()[0], "mailto:a@b.example", allow_private=True)
    try:
        sub = webpush_endpoint.subscribe()
        await check_endpoint(sub.endpoint, allow_private=True)
        result = await provider.send(_device(sub), _payload())
    finally:
        await provider.close()
    assert result.outcome is Outcome.SENT
    assert len(webpush_endpoint.delivered) == 1 and webpush_endpoint.errors == []


async def test_the_send_time_resolver_refuses_a_host_with_any_private_answer() -> None:
    """The resolver layer on its own (the socket factory backs it up): one private answer
    among public ones refuses the whole host."""
    inner = StaticResolver({"ok.example.com": [PUBLIC], "mixed.example.com": [PUBLIC, "10.0.0.7"],
                            "rebound.example.com": ["127.0.0.1"]})
    resolver = PublicOnlyResolver(inner)
    [found] = await resolver.resolve("ok.example.com", 443)
    assert found["host"] == PUBLIC
    for host in ("mixed.example.com", "rebound.example.com"):
        with pytest.raises(RefusedAddress):
            await resolver.resolve(host, 443)
