"""Known-device tokens: how the login throttle tells the account's owner from strangers.

Every successful login (and every registration) hands the client a device token: the
user id, an expiry and a random nonce, signed with an HMAC key derived from SECRET_KEY
(``petspark/device-token/v1``; tokens signed under PREVIOUS_SECRET_KEY stay valid). Browsers
get it as the ``petspark_device`` cookie (HttpOnly, Path=/api/v1/auth, Max-Age
``AUTH_DEVICE_TTL_S``); apps get it as ``device_token`` in the login response and send it
back in the login body.

It is not a credential: it never signs anyone in by itself. It only says "this client
signed in to this account before", which moves a login attempt from the per-email limit
that strangers can fill (``AUTH_LOGIN_EMAIL_MAX_FAILURES``) to a limit of its own, per
device (``AUTH_LOGIN_MAX_FAILURES``) — so failures by strangers cannot lock the owner
out of a device they already use (OWASP's "device cookies" scheme).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from server.auth.tokens import derive_key
from server.ids import parse_id

DEVICE_TOKEN_LABEL = b"petspark/device-token/v1"
COOKIE_NAME = "petspark_device"
COOKIE_PATH = "/api/v1/auth"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16}")


@dataclass(frozen=True, slots=True)
class KnownDevice:
    user_id: str
    nonce: str
    """Names the device in its own failure counter."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class DeviceTokens:
    def __init__(self, secret: str, previous_secret: str | None, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._keys = [derive_key(secret, DEVICE_TOKEN_LABEL)]
        if previous_secret and previous_secret != secret:
            self._keys.append(derive_key(previous_secret, DEVICE_TOKEN_LABEL))

    def _sign(self, key: bytes, body: str) -> str:
        return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])

    def issue(self, user_id: str, *, now: float | None = None) -> str:
        expires = int(now if now is not None else time.time()) + self.ttl_s
        body = f"{user_id}.{expires}.{_b64(secrets.token_bytes(12))}"
        return f"{body}.{self._sign(self._keys[0], body)}"

    def verify(self, token: str | None) -> KnownDevice | None:
        """The device a well-signed, unexpired token names; None for anything else."""
        if not token or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 4:
            return None
        user_id, expires, nonce, signature = parts
        body = f"{user_id}.{expires}.{nonce}"
        if not any(hmac.compare_digest(self._sign(key, body), signature) for key in self._keys):
            return None
        if (parse_id(user_id) is None or not expires.isdigit() or int(expires) < time.time()
                or not _NONCE.fullmatch(nonce)):
            return None
        return KnownDevice(user_id=user_id, nonce=nonce)
