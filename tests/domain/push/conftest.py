"""Push delivery through the real app: loopback protocol peers, real PostgreSQL and Redis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from protocol.notifications import DevicesRegister, PushSubscription, PushSubscriptionKeys
from protocol.objects import Notification, Platform
from server.domain.notifications.service import notify
from server.domain.push.service import PushService
from server.observability.metrics import Metrics
from server.push.apns import ApnsProvider
from server.push.factory import PushProviders
from server.push.fcm import FcmProvider
from server.push.log import LogPushProvider
from server.push.provider import WebPushSubscription
from server.push.vapid import generate_key
from server.push.webpush import WebPushProvider
from server.settings import Settings
from server.state import RUNTIME
from tests.domain.conftest import User, cid, wait_online
from tests.support.apns import ApnsServer
from tests.support.fcm import FcmServer
from tests.support.peers import (  # noqa: F401 - fixtures
    apns_server,
    fcm_server,
    smtp_server,
    test_ca,
    webpush_endpoint,
)
from tests.support.tls import TestCA
from tests.support.waiting import until
from tests.support.webpush import WebPushEndpoint

VAPID_PRIVATE, VAPID_PUBLIC = generate_key()
VAPID_SUBJECT = "mailto:ops@petspark.test"
FCM_TOKEN = "fcm-device:" + "A1b2_C3d4-" * 12
APNS_TOKEN = "a1b2c3d4" * 8


def push_settings(**extra: Any) -> dict[str, Any]:
    """Web Push configured against loopback endpoints, short delays for tests."""
    values: dict[str, Any] = {
        "vapid_private_key": VAPID_PRIVATE, "vapid_subject": VAPID_SUBJECT,
        "push_allow_private_endpoints": True, "push_delay_s": 1.0, "ack_flush_s": 0.05,
        "push_poll_s": 0.2, "push_retry_base_s": 0.05,
    }
    values.update(extra)
    return values


def providers_with(fcm: FcmServer | None = None, apns: ApnsServer | None = None,
                   ca: TestCA | None = None, tmp: Path | None = None) -> Any:
    """A ``push_providers`` factory: Web Push from the settings, FCM and APNs at the
    loopback peers (APNs trusting the test CA)."""

    def factory(settings: Settings, metrics: Metrics) -> PushProviders:
        fallback = LogPushProvider(metrics=metrics)
        webpush = WebPushProvider(VAPID_PRIVATE, VAPID_SUBJECT, allow_private=True,
                                  metrics=metrics)
        by: dict[Any, Any] = {"webpush": webpush, "fcm": fallback, "apns": fallback}
        if fcm is not None and tmp is not None:
            by["fcm"] = FcmProvider.from_file(fcm.write_credentials(tmp / "fcm.json"),
                                              endpoint=fcm.base_url, metrics=metrics)
        if apns is not None and ca is not None and tmp is not None:
            by["apns"] = ApnsProvider.from_file(
                apns.write_key(tmp / "AuthKey.p8"), key_id=apns.key_id, team_id=apns.team_id,
                topic=apns.topic, endpoint=apns.base_url, ssl_context=ca.client_context(),
                metrics=metrics)
        return PushProviders(by, allow_private=True)

    return factory


def push_service(client: TestClient) -> PushService:
    return client.server.app[RUNTIME].commands.service(PushService)


def metric(client: TestClient, provider: str, outcome: str) -> float:
    value = client.server.app[RUNTIME].deps.metrics.registry.get_sample_value(
        "petspark_pushes_total", {"provider": provider, "outcome": outcome})
    return value or 0.0


def wire_subscription(sub: WebPushSubscription) -> PushSubscription:
    return PushSubscription(endpoint=sub.endpoint, keys=PushSubscriptionKeys(
        p256dh=sub.keys.p256dh, auth=sub.keys.auth))


async def register_browser(user: User, endpoint: WebPushEndpoint) -> tuple[str, Any]:
    sub = endpoint.subscribe()
    result = await user.cmd(DevicesRegister(id=cid(), platform=Platform.WEBPUSH,
                                            subscription=wire_subscription(sub)))
    return result.device.id, sub


async def go_offline(user: User) -> None:
    await user.sock.close()
    await wait_online(user.client, user.id, False)


async def notify_user(client: TestClient, user_id: str, *, kind: str = "match.created",
                      title: str = "It's a match!", body: str = "Rex and Luna like each other",
                      data: dict[str, Any] | None = None) -> Notification:
    """A notification written by the real ``notify`` in a stream transaction, as any area
    writes one."""
    deps = client.server.app[RUNTIME].deps
    async with deps.stream.transaction() as tx:
        notes = await notify(tx, deps.presence, [user_id], kind=kind, title=title, body=body,
                             data=data if data is not None else {"match_id": "m-1"})
    return notes[user_id]


async def db(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def outcome(database_url: str, notification_id: str) -> str | None:
    rows = await db(database_url, "SELECT outcome FROM push_outbox WHERE notification_id = $1",
                    notification_id)
    return rows[0]["outcome"] if rows else None


async def wait_outcome(database_url: str, notification_id: str, timeout: float = 10.0) -> str:
    found: list[str] = []

    async def handled() -> bool:
        value = await outcome(database_url, notification_id)
        if value is not None:
            found.append(value)
        return value is not None

    await until(handled, timeout=timeout, what=f"the outbox row of {notification_id}")
    return found[-1]


async def deliveries(database_url: str, notification_id: str) -> list[asyncpg.Record]:
    return await db(database_url, """
        SELECT d.device_id::text AS device_id, d.state, d.attempts, d.reason, d.provider,
               d.next_attempt_at, d.updated_at
        FROM push_deliveries d JOIN push_outbox o ON o.id = d.outbox_id
        WHERE o.notification_id = $1 ORDER BY d.device_id""", notification_id)


async def wait_final(database_url: str, timeout: float = 15.0) -> None:
    """Until no delivery is pending or being sent, and every outbox row is handled."""
    async def settled() -> bool:
        rows = await db(database_url, """
            SELECT (SELECT count(*) FROM push_deliveries WHERE state IN ('pending', 'sending'))
                 + (SELECT count(*) FROM push_outbox WHERE handled_at IS NULL) AS open""")
        return bool(rows[0]["open"] == 0)

    await until(settled, timeout=timeout, interval=0.05, what="every push to be final")


def ids_pushed(endpoint: WebPushEndpoint) -> Counter[tuple[str, str]]:
    """(browser, notification_id) → how many times the endpoint accepted it."""
    return Counter((a.browser_id, (a.payload or {}).get("data", {}).get("notification_id", ""))
                   for a in endpoint.delivered)


@pytest.fixture
def fcm_token() -> str:
    return FCM_TOKEN
