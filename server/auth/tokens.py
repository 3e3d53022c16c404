"""Signed access tokens (JWT, HS256 through PyJWT) and the keys derived from SECRET_KEY.

Claims: ``sub`` (user id), ``role``, ``sid`` (session id), ``iat``, ``exp``;
the header carries ``kid``, which names the key that signed the token.

Keys are never the raw secret: each purpose gets its own 32-byte key derived
with HKDF-SHA256 and a distinct label, so an access-token key cannot open a
session cookie and vice versa. Rotation: set ``PREVIOUS_SECRET_KEY`` to the old
``SECRET_KEY`` and ``SECRET_KEY`` to a new one; new tokens are signed with the
new key, tokens the old key signed verify until they expire.

Signature and expiry only: whether the session is still live is the
``Verifier``'s database check.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Literal

import jwt
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.errors import InvalidCredential

ACCESS_TOKEN_LABEL = b"petspark/access-token/v1"
SESSION_COOKIE_LABEL = b"petspark/session-cookie/v1"
_ALGORITHM = "HS256"


def derive_key(secret: str, label: bytes) -> bytes:
    """A 32-byte key for one purpose (``label``) from a SECRET_KEY string."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        secret.encode("utf-8")
    )


def key_id(key: bytes) -> str:
    """A public name for a derived key (an HMAC of it: reveals nothing about the key)."""
    return hmac.new(key, b"petspark/kid", hashlib.sha256).hexdigest()[:16]


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    sub: str
    role: Literal["user", "admin"]
    sid: str
    iat: int
    exp: int

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


class AccessTokens:
    """Issue with the current key; verify with the current or the previous one."""

    def __init__(self, secret: str, previous_secret: str | None, ttl_s: int) -> None:
        self._ttl_s = ttl_s
        current = derive_key(secret, ACCESS_TOKEN_LABEL)
        self._current_kid = key_id(current)
        self._current = current
        self._keys = {self._current_kid: current}
        if previous_secret and previous_secret != secret:
            previous = derive_key(previous_secret, ACCESS_TOKEN_LABEL)
            self._keys[key_id(previous)] = previous

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def issue(
        self,
        *,
        user_id: str,
        role: Literal["user", "admin"],
        session_id: str,
        now: datetime | None = None,
        ttl_s: int | None = None,
    ) -> tuple[str, datetime]:
        """A signed token and its expiry. ``now``/``ttl_s`` exist for tests (expired tokens)."""
        issued = now or datetime.now(UTC)
        iat = int(issued.timestamp())
        exp = iat + (self._ttl_s if ttl_s is None else ttl_s)
        payload = {"sub": user_id, "role": role, "sid": session_id, "iat": iat, "exp": exp}
        token = jwt.encode(
            payload, self._current, algorithm=_ALGORITHM, headers={"kid": self._current_kid}
        )
        return token, datetime.fromtimestamp(exp, UTC)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a token signed by a known key and not expired; else InvalidCredential."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid", "")))
            if key is None:
                raise InvalidCredential()
            payload = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "sid", "role", "iat", "exp"]},
            )
            return msgspec.convert(payload, AccessClaims)
        except (jwt.PyJWTError, msgspec.ValidationError):
            raise InvalidCredential() from None


def session_cookie_keys(secret: str, previous_secret: str | None) -> list[bytes]:
    """Cookie encryption keys, newest first (the cookie storage decrypts with any of them)."""
    keys = [derive_key(secret, SESSION_COOKIE_LABEL)]
    if previous_secret and previous_secret != secret:
        keys.append(derive_key(previous_secret, SESSION_COOKIE_LABEL))
    return keys
