"""The payload's limits, Retry-After parsing, the log default and the factory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import msgspec
import pytest

from server.observability.metrics import Metrics
from server.push.apns import ApnsProvider
from server.push.factory import build_push_providers
from server.push.fcm import FcmProvider
from server.push.guard import EndpointRefused
from server.push.log import LogPushProvider
from server.push.provider import (
    MAX_PAYLOAD_BYTES,
    Outcome,
    PayloadTooLarge,
    PushDevice,
    PushPayload,
    WebPushKeys,
    WebPushSubscription,
    fit_json,
    parse_retry_after,
)
from server.push.vapid import generate_key
from server.push.webpush import WebPushProvider
from server.settings import Settings
from tests.support.apns import ApnsServer
from tests.support.fcm import FcmServer
from tests.support.webpush import WebPushEndpoint


def test_the_wire_payload_has_exactly_the_contract_fields() -> None:
    p = PushPayload(kind="notification.post_like", title="Max liked your post", body="",
                    data={"post_id": "p1"}, unread_count=4, collapse_key="k")
    assert p.to_wire() == {"kind": "notification.post_like", "title": "Max liked your post",
                           "body": "", "data": {"post_id": "p1"}, "unread_count": 4}
    assert json.loads(p.to_json()) == p.to_wire()


@pytest.mark.parametrize("kwargs", [
    {"kind": ""}, {"kind": "k" * 65}, {"unread_count": -1}, {"ttl_s": -1},
    {"ttl_s": 10**9}, {"data": {"Bad-Key": "x"}}, {"data": {"k": "v" * 300}},
    {"data": {f"k{i}": "v" for i in range(17)}}, {"collapse_key": ""},
])
def test_payload_limits(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"kind": "chat.message", "title": "t", "body": "b"}
    values.update(kwargs)
    with pytest.raises(ValueError):
        PushPayload(**values)  # type: ignore[arg-type]


def test_payloads_decode_with_the_same_limits() -> None:
    """The worker may keep payloads as JSON: decoding checks the same rules."""
    good = msgspec.json.decode(b'{"kind":"x","title":"t","body":"b"}', type=PushPayload)
    assert good.ttl_s == 86400 and good.data == {}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"kind":"x","title":"t","body":"b","unread_count":-2}',
                            type=PushPayload)


def test_long_text_is_shortened_to_fit() -> None:
    wire = {"kind": "k", "title": "T" * 5000, "body": '"\\' * 4000, "data": {},
            "unread_count": 0}
    out = fit_json(wire)
    assert len(out) <= MAX_PAYLOAD_BYTES
    decoded = json.loads(out)
    assert decoded["kind"] == "k" and decoded["body"] == ""  # body goes first
    assert decoded["title"].endswith("…")
    with pytest.raises(PayloadTooLarge):
        fit_json({"kind": "k", "title": "", "body": "", "data": {"x": "y" * 4000}})


def test_titles_and_bodies_are_clipped_on_the_wire() -> None:
    p = PushPayload(kind="k", title="t" * 500, body="b" * 5000)
    wire = p.to_wire()
    assert len(wire["title"]) == 120 and wire["title"].endswith("…")
    assert len(wire["body"]) == 1000 and wire["body"].endswith("…")


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 5 ") == 5
    assert parse_retry_after("99999999") == 86400  # clamped to a day
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0  # past
    when = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=784111777 - 30)
    assert when == 30
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk) is None


async def test_the_log_default_records_one_line_without_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    provider = LogPushProvider(metrics=metrics)
    device = PushDevice(id="d-7", platform="apns", token="ab" * 32)
    payload = PushPayload(kind="chat.message", title="Bella", body="my secret message text",
                          data={"conversation_id": "c1"}, unread_count=1)
    with caplog.at_level(logging.INFO, logger="server.push"):
        result = await provider.send(device, payload)
    assert result.outcome is Outcome.SENT and result.logged
    [record] = [r for r in caplog.records if r.name == "server.push.log"]
    fields = vars(record)
    assert (fields["platform"], fields["device_id"], fields["title"]) == ("apns", "d-7", "Bella")
    assert "secret" not in json.dumps({k: str(v) for k, v in fields.items()})
    assert provider.count == 1
    assert metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": "log", "outcome": "logged"}) == 1


async def test_without_settings_every_platform_is_logged() -> None:
    providers = build_push_providers(Settings())
    try:
        assert providers.names == {"webpush": "log", "fcm": "log", "apns": "log"}
        assert providers.webpush_public_key is None
        # The registration guard applies even without Web Push configured.
        sub = WebPushEndpoint().subscribe("http://127.0.0.1:9")
        with pytest.raises(EndpointRefused, match="https"):
            await providers.check_subscription(sub)
        bad_keys = WebPushSubscription(endpoint="https://127.0.0.1/x",
                                       keys=WebPushKeys(p256dh="x", auth="y"))
        with pytest.raises(EndpointRefused, match="p256dh"):
            await providers.check_subscription(bad_keys)
    finally:
        await providers.close()


async def test_settings_build_each_provider(
    tmp_path: Path, fcm_server: FcmServer, apns_server: ApnsServer
) -> None:
    private, public = generate_key()
    settings = Settings(
        vapid_private_key=private, vapid_subject="mailto:ops@petspark.example",
        fcm_credentials_file=str(fcm_server.write_credentials(tmp_path / "sa.json")),
        fcm_endpoint=fcm_server.base_url,
        apns_key_file=str(apns_server.write_key(tmp_path / "k.p8")),
        apns_key_id=apns_server.key_id, apns_team_id=apns_server.team_id,
        apns_topic=apns_server.topic, apns_endpoint=apns_server.base_url,
    )
    providers = build_push_providers(settings, Metrics())
    try:
        assert providers.names == {"webpush": "webpush", "fcm": "fcm", "apns": "apns"}
        assert isinstance(providers.for_platform("webpush"), WebPushProvider)
        assert isinstance(providers.for_platform("fcm"), FcmProvider)
        assert isinstance(providers.for_platform("apns"), ApnsProvider)
        assert providers.webpush_public_key == public
        fcm = providers.for_platform("fcm")
        result = await fcm.send(PushDevice(id="p", platform="fcm", token="tok"),
                                PushPayload(kind="k", title="t", body="b"))
        assert result.outcome is Outcome.SENT and fcm_server.token_requests == 1
    finally:
        await providers.close()
