"""Web Push (RFC 8030) with aes128gcm bodies (RFC 8291) and VAPID (RFC 8292).

Encryption is pywebpush's ``WebPusher.encode`` (http-ece underneath). The VAPID
token is an ES256 JWT signed with PyJWT (py-vapid refuses IPv6-literal audiences and
re-checks ``sub`` with a regex on every call), sent as ``Authorization: vapid
t=<jwt>,k=<public key>``. The request is ours, on one shared aiohttp session whose
connector carries the endpoint guard (``server.push.guard``): pywebpush's
``webpush_async`` would encrypt and sign on the event loop, parse the VAPID key on
every call, follow redirects and hide ``Retry-After`` behind an exception.

Cost, measured on the 2-core box (``bench/push_crypto.py``): one aes128gcm
encryption (an ephemeral ECDH key, HKDF, AES-GCM) takes ~120-150 µs of CPU and a
VAPID signature ~30-60 µs. 50 concurrent sends encrypting on the loop stall it for
~5 ms at a time (p50 loop lag 5 ms, p99 10 ms), so the encryption runs in one
dedicated worker thread fed one job at a time (p99 lag 0.6-3 ms on a busy shared box,
at ~4,000-4,600 encryptions/s), and the VAPID header is signed once per push service
and reused for 11 of its 12 hours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import jwt
from aiohttp.abc import AbstractResolver
from pywebpush import WebPusher, WebPushException

from server.observability.metrics import Metrics
from server.push import guard
from server.push.provider import (
    PayloadTooLarge,
    PushDevice,
    PushPayload,
    PushProvider,
    PushResult,
    WebPushSubscription,
    parse_retry_after,
)
from server.push.vapid import load_vapid_key, public_key_b64

log = logging.getLogger(__name__)

VAPID_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h
VAPID_RENEW_BEFORE_S = 3600
TOPIC_MAX_CHARS = 32  # RFC 8030 §5.4
_MAX_CACHED_AUDIENCES = 256


class WebPushProvider(PushProvider):
    name = "webpush"

    def __init__(
        self, private_key: str, subject: str, *, allow_private: bool = False,
        metrics: Metrics | None = None, resolver: AbstractResolver | None = None,
        timeout_s: float = 10.0, clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics=metrics)
        self._key = load_vapid_key(private_key)
        self._subject = subject
        self._public_key = public_key_b64(self._key)
        self._allow_private = allow_private
        self._resolver = resolver
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        # One thread, fed one job at a time: enough for thousands of pushes a second, and
        # it goes idle (dropping the GIL) after each encryption. With a queue of jobs it
        # would keep the GIL until the interpreter's 5 ms switch interval forced it off,
        # and that would be the loop's lag.
        self._crypto = ThreadPoolExecutor(1, thread_name_prefix="webpush-crypto")
        self._crypto_gate = asyncio.Semaphore(1)
        self._vapid_headers: dict[str, tuple[str, float]] = {}

    def public_key(self) -> str:
        """The VAPID public key (uncompressed point, URL-safe base64) for ``push.config``."""
        return self._public_key

    async def check_subscription(self, subscription: WebPushSubscription) -> None:
        await guard.check_subscription(
            subscription, allow_private=self._allow_private, resolver=self._resolver
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = guard.guarded_connector(
                allow_private=self._allow_private, resolver=self._resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False,
                headers={"User-Agent": "petspark-push"},
            )
        return self._session

    def vapid_header(self, audience: str) -> str:
        """``Authorization: vapid t=…, k=…`` for a push service origin, signed once per
        origin and reused until an hour before it expires. Thread-safe enough: two threads
        may sign the same origin at once and one result wins."""
        now = self._clock()
        cached = self._vapid_headers.get(audience)
        if cached is not None and now < cached[1]:
            return cached[0]
        exp = int(now) + VAPID_LIFETIME_S
        token = jwt.encode({"aud": audience, "exp": exp, "sub": self._subject}, self._key,
                           algorithm="ES256", headers={"typ": "JWT"})
        header = f"vapid t={token},k={self._public_key}"
        if len(self._vapid_headers) >= _MAX_CACHED_AUDIENCES:
            self._vapid_headers.clear()
        self._vapid_headers[audience] = (header, exp - VAPID_RENEW_BEFORE_S)
        return header

    def _prepare(
        self, subscription: WebPushSubscription, body: bytes, audience: str
    ) -> tuple[bytes, str]:
        """Encrypt and sign (worker thread)."""
        info = {"endpoint": subscription.endpoint,
                "keys": {"p256dh": subscription.keys.p256dh, "auth": subscription.keys.auth}}
        encrypted = WebPusher(info).encode(body, "aes128gcm")["body"]
        return bytes(encrypted), self.vapid_header(audience)

    async def _deliver(self, device: PushDevice, payload: PushPayload) -> PushResult:
        subscription = device.subscription
        if subscription is None:
            return PushResult.gone(reason="no_subscription")
        try:
            url = guard.parse_endpoint(subscription.endpoint, allow_private=self._allow_private)
            guard.check_keys(subscription)
        except guard.EndpointRefused as exc:
            return PushResult.gone(reason=f"invalid_subscription: {exc.message}")
        try:
            body = payload.to_json()
        except PayloadTooLarge:
            return PushResult.failed(reason="payload_too_large")
        audience = str(url.origin())
        loop = asyncio.get_running_loop()
        try:
            async with self._crypto_gate:
                encrypted, authorization = await loop.run_in_executor(
                    self._crypto, self._prepare, subscription, body, audience
                )
        except (WebPushException, ValueError) as exc:
            return PushResult.gone(reason=f"invalid_subscription: {type(exc).__name__}")
        headers: dict[str, str] = {
            "TTL": str(payload.ttl_s),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": authorization,
        }
        topic = payload.collapse_id(TOPIC_MAX_CHARS, url_safe=True)
        if topic is not None:
            headers["Topic"] = topic
        try:
            # Never follow a redirect: its target would skip the registration check.
            async with self._get_session().post(
                subscription.endpoint, data=encrypted, headers=headers, allow_redirects=False
            ) as resp:
                return _result(resp.status, resp.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if guard.is_refusal(exc):
                return PushResult.failed(reason="endpoint_refused")
            return PushResult.retry(reason=f"network: {type(exc).__name__}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._crypto.shutdown(wait=False, cancel_futures=True)


def _result(status: int, headers: Any) -> PushResult:
    if status in (200, 201, 202):
        return PushResult.sent(status=status, provider_id=headers.get("Location"))
    if status in (404, 410):
        return PushResult.gone(status=status, reason="subscription_gone")
    if status == 429 or status >= 500:
        return PushResult.retry(
            status=status, reason="throttled" if status == 429 else "server_error",
            retry_after_s=parse_retry_after(headers.get("Retry-After")),
        )
    if status == 413:
        return PushResult.failed(status=status, reason="payload_too_large")
    if status in (401, 403):
        return PushResult.failed(status=status, reason="vapid_rejected")
    return PushResult.failed(status=status, reason=f"http_{status}")
