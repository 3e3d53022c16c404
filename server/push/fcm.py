"""Firebase Cloud Messaging, HTTP v1 API, with a service account.

Authentication is OAuth 2.0's JWT-bearer grant (RFC 7523), fully async: an RS256
assertion signed with the service account's key (PyJWT; ``iss`` the account,
``scope`` firebase.messaging, ``aud`` Google's token URL — as google-auth sends it
even with another ``token_uri``) is posted with aiohttp to the account's
``token_uri``. The access token is cached until five minutes before it expires, and
one refresh at a time serves every waiting send. google-auth's async credentials
are private API and refresh in a thread, so it is not used.

A message carries the payload twice, as FCM wants: ``notification {title, body}``
(shown by the system when the app is in the background) and ``data`` (string
values only: ``kind``, ``unread_count``, ``data`` as JSON) for the app; Android
collapses on ``collapse_key`` and replaces on ``notification.tag``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from server.credentials import (
    GOOGLE_TOKEN_URI,
    ServiceAccount,
    load_service_account,
    private_key,
)
from server.observability.metrics import Metrics
from server.push.provider import (
    PayloadTooLarge,
    PushDevice,
    PushPayload,
    PushProvider,
    PushResult,
    parse_retry_after,
)

log = logging.getLogger(__name__)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"
ASSERTION_LIFETIME_S = 3600
REFRESH_BEFORE_S = 300
MAX_RESPONSE_BYTES = 65536
MAX_TOKEN_CHARS = 4096
COLLAPSE_MAX_CHARS = 64


class OAuthError(Exception):
    def __init__(self, reason: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after_s = retry_after_s


class FcmProvider(PushProvider):
    name = "fcm"

    def __init__(
        self, account: ServiceAccount, *, endpoint: str = DEFAULT_ENDPOINT,
        metrics: Metrics | None = None, timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time, ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._account = account
        self._key = private_key(account)
        self._send_url = (
            f"{endpoint.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        )
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FcmProvider:
        return cls(load_service_account(path), **kwargs)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, trust_env=False,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=100),
            )
        return self._session

    # --- OAuth ------------------------------------------------------------------------
    async def access_token(self) -> str:
        """A valid access token: the cached one, or one fresh from ``token_uri``."""
        token = self._token
        if token is not None and self._clock() < self._token_renew_at:
            return token
        async with self._token_lock:
            # Whoever held the lock before us may have refreshed already.
            if self._token is not None and self._clock() < self._token_renew_at:
                return self._token
            token, lifetime = await self._fetch_token()
            self._token = token
            self._token_renew_at = self._clock() + max(lifetime - REFRESH_BEFORE_S,
                                                       lifetime / 2)
            return token

    def forget_token(self, token: str) -> None:
        """The API said the token is no good: the next send fetches a new one."""
        if self._token == token:
            self._token = None

    def _assertion(self) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._account.client_email, "scope": FCM_SCOPE, "aud": GOOGLE_TOKEN_URI,
            "iat": now, "exp": now + ASSERTION_LIFETIME_S,
        }
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": self._account.private_key_id})

    async def _fetch_token(self) -> tuple[str, float]:
        # RSA signing takes about a millisecond: not on the loop.
        assertion = await asyncio.to_thread(self._assertion)
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion}
        try:
            async with self._get_session().post(
                self._account.token_uri, data=form, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES)
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OAuthError(f"oauth_unreachable: {type(exc).__name__}") from None
        if status != 200:
            error = _json_field(raw, "error") or f"http_{status}"
            if status < 500 and status != 429:
                log.error("FCM OAuth token refused: check FCM_CREDENTIALS_FILE",
                          extra={"status": status, "error": error})
            raise OAuthError(f"oauth_refused: {error}", status=status,
                             retry_after_s=parse_retry_after(headers.get("Retry-After")))
        try:
            body = json.loads(raw)
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise OAuthError("oauth_bad_response", status=status) from None
        if not token or lifetime <= 0:
            raise OAuthError("oauth_bad_response", status=status)
        return token, lifetime

    # --- send -------------------------------------------------------------------------
    def message(self, token: str, payload: PushPayload) -> dict[str, Any]:
        wire = json.loads(payload.to_json())  # shortened to fit, if it had to be
        android: dict[str, Any] = {
            "ttl": f"{payload.ttl_s}s",
            "priority": "high",
            "notification": {"notification_count": payload.unread_count},
        }
        apns: dict[str, Any] = {"payload": {"aps": {"badge": payload.unread_count}}}
        collapse = payload.collapse_id(COLLAPSE_MAX_CHARS)
        if collapse is not None:
            android["collapse_key"] = collapse
            android["notification"]["tag"] = collapse
            apns["headers"] = {"apns-collapse-id": collapse}
        return {"message": {
            "token": token,
            "notification": {"title": wire["title"], "body": wire["body"]},
            "data": {
                "kind": wire["kind"],
                "unread_count": str(wire["unread_count"]),
                "data": json.dumps(wire["data"], separators=(",", ":")),
            },
            "android": android,
            "apns": apns,
        }}

    async def _deliver(self, device: PushDevice, payload: PushPayload) -> PushResult:
        if not device.token or len(device.token) > MAX_TOKEN_CHARS:
            return PushResult.gone(reason="invalid_token")
        try:
            body = self.message(device.token, payload)
        except PayloadTooLarge:
            return PushResult.failed(reason="payload_too_large")
        try:
            access = await self.access_token()
        except OAuthError as exc:
            return PushResult.retry(status=exc.status, reason=exc.reason,
                                    retry_after_s=exc.retry_after_s)
        try:
            async with self._get_session().post(
                self._send_url, json=body, allow_redirects=False,
                headers={"Authorization": f"Bearer {access}"},
            ) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES)
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return PushResult.retry(reason=f"network: {type(exc).__name__}")
        if status == 200:
            return PushResult.sent(status=status, provider_id=_json_field(raw, "name"))
        code, message, fields = _fcm_error(raw)
        if code == "UNREGISTERED":
            return PushResult.gone(status=status, reason=code)
        if code == "INVALID_ARGUMENT" and _about_token(message, fields):
            return PushResult.gone(status=status, reason=code)
        if code == "SENDER_ID_MISMATCH":  # the token belongs to another Firebase project
            return PushResult.gone(status=status, reason=code)
        if status == 401:
            self.forget_token(access)
            return PushResult.retry(status=status, reason=code or "unauthenticated")
        if status == 429 or status >= 500:
            return PushResult.retry(
                status=status, reason=code or f"http_{status}",
                retry_after_s=parse_retry_after(headers.get("Retry-After")),
            )
        return PushResult.failed(status=status, reason=code or f"http_{status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_field(raw: bytes, name: str) -> str | None:
    try:
        value = json.loads(raw).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _fcm_error(raw: bytes) -> tuple[str | None, str, list[str]]:
    """(FCM error code, message, fields named by BadRequest violations) from an error body.

    The code is the ``FcmError`` detail's ``errorCode`` when present, else the
    ``google.rpc`` status name.
    """
    try:
        error = json.loads(raw)["error"]
        assert isinstance(error, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        return None, "", []
    code = error.get("status") if isinstance(error.get("status"), str) else None
    fields: list[str] = []
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.firebase.fcm.v1.FcmError") and detail.get("errorCode"):
            code = str(detail["errorCode"])
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                fields.append(violation["field"])
    message = error.get("message")
    return code, message if isinstance(message, str) else "", fields


def _about_token(message: str, fields: list[str]) -> bool:
    """INVALID_ARGUMENT names many faults; only one about the token removes the device
    (a fault in our own message must not delete every device)."""
    if any(f in ("message.token", "token") for f in fields):
        return True
    return "registration token" in message.lower()
