"""Apple Push Notification service: token-based authentication over HTTP/2.

The provider token is an ES256 JWT (``iss`` team id, ``iat``; header ``kid`` the key
id) signed with the ``.p8`` key. Apple refuses tokens older than an hour and
throttles ones renewed more often than every 20 minutes, so one token is reused for
50 minutes (``TOKEN_REFRESH_S``), then replaced; a 403 ``ExpiredProviderToken`` or
``InvalidProviderToken`` replaces it at once and the push is retried.

HTTP/2 is httpx's (with h2): one pooled, multiplexed connection per host, TLS
verified (a test passes its own CA). httpx rather than aioapns: the JWT is ours (an
injectable clock tests the 50-minute renewal), and every status, ``reason`` and
``retry-after`` reaches ``PushResult`` instead of aioapns's own result type.
``APNS_ENDPOINT`` selects the host (``https://api.sandbox.push.apple.com`` for
development builds). A push is
``POST /3/device/<token>`` with ``apns-topic``, ``apns-push-type: alert``,
``apns-priority``, ``apns-expiration``, ``apns-collapse-id`` and our own
``apns-id``, which Apple echoes.

410 ``Unregistered`` removes the device. 400 ``BadDeviceToken`` does not: it is
what a sandbox token says to the production host, and a wrong ``APNS_ENDPOINT``
must not wipe every iPhone; the push fails and the log line says why.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from server.credentials import load_apns_key
from server.observability.metrics import Metrics
from server.push.provider import (
    PayloadTooLarge,
    PushDevice,
    PushPayload,
    PushProvider,
    PushResult,
    parse_retry_after,
)

DEFAULT_ENDPOINT = "https://api.push.apple.com"
TOKEN_REFRESH_S = 50 * 60
COLLAPSE_MAX_BYTES = 64
_TOKEN = re.compile(r"^[0-9a-fA-F]{16,200}$")


class ApnsProvider(PushProvider):
    name = "apns"

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, *, key_id: str, team_id: str, topic: str,
        endpoint: str = DEFAULT_ENDPOINT, metrics: Metrics | None = None,
        ssl_context: ssl.SSLContext | None = None, timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics=metrics)
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._topic = topic
        self._base = endpoint.rstrip("/")
        self._ssl = ssl_context
        self._timeout = timeout_s
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_issued_at = 0.0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ApnsProvider:
        return cls(load_apns_key(path), **kwargs)

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                http2=True, verify=self._ssl if self._ssl is not None else True,
                timeout=self._timeout, trust_env=False, follow_redirects=False,
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            )
        return self._client

    def provider_token(self) -> str:
        """The current provider JWT; a new one when the current is 50 minutes old."""
        now = self._clock()
        if self._token is None or now - self._token_issued_at >= TOKEN_REFRESH_S:
            self._token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)}, self._key, algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self._token_issued_at = now
        return self._token

    def notification(self, payload: PushPayload) -> bytes:
        wire = json.loads(payload.to_json())
        aps: dict[str, Any] = {
            "alert": {"title": wire["title"], "body": wire["body"]},
            "badge": wire["unread_count"],
            "sound": "default",
        }
        thread = payload.collapse_id(COLLAPSE_MAX_BYTES)
        if thread is not None:
            aps["thread-id"] = thread
        return json.dumps(
            {"aps": aps, "kind": wire["kind"], "data": wire["data"],
             "unread_count": wire["unread_count"]},
            separators=(",", ":"), ensure_ascii=False,
        ).encode()

    async def _deliver(self, device: PushDevice, payload: PushPayload) -> PushResult:
        if not device.token or not _TOKEN.match(device.token):
            return PushResult.gone(reason="invalid_token")
        try:
            body = self.notification(payload)
        except PayloadTooLarge:
            return PushResult.failed(reason="payload_too_large")
        apns_id = str(uuid.uuid4())
        token = self.provider_token()
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(self._clock()) + payload.ttl_s if payload.ttl_s else 0),
            "apns-id": apns_id,
            "content-type": "application/json",
        }
        collapse = payload.collapse_id(COLLAPSE_MAX_BYTES)
        if collapse is not None:
            headers["apns-collapse-id"] = collapse
        url = f"{self._base}/3/device/{device.token}"
        try:
            resp = await self._get_client().post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return PushResult.retry(reason=f"network: {type(exc).__name__}")
        status = resp.status_code
        if status == 200:
            return PushResult.sent(status=status, provider_id=resp.headers.get("apns-id"))
        reason = _reason(resp.content) or f"http_{status}"
        if status == 410:
            return PushResult.gone(status=status, reason=reason)
        if status == 403 and reason in ("ExpiredProviderToken", "InvalidProviderToken"):
            if self._token == token:
                self._token = None
            return PushResult.retry(status=status, reason=reason)
        if status == 429 or status >= 500:
            return PushResult.retry(
                status=status, reason=reason,
                retry_after_s=parse_retry_after(resp.headers.get("retry-after")),
            )
        return PushResult.failed(status=status, reason=reason)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _reason(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("reason")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
