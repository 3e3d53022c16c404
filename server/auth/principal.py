"""Who is calling: the result of verifying any credential (token, cookie, hello.token)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Role = Literal["user", "admin"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    role: Role
    session_id: str
    # When the credential stops being valid (access-token expiry); None for cookie
    # sessions, which are checked against the sessions table instead.
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuthError(Exception):
    """A credential was refused. ``code`` is the wire error code; ``close_code`` the WS close."""

    code = "unauthorized"
    close_code = 4001
    status = 401

    def __init__(self, message: str = "invalid or expired credentials") -> None:
        super().__init__(message)
        self.message = message


class InvalidCredential(AuthError):
    """Missing, malformed, expired or revoked token/cookie → HTTP 401 / close 4001."""


class AccountBanned(AuthError):
    """The account is banned or closed → HTTP 403 / close 4003."""

    code = "forbidden"
    close_code = 4003
    status = 403

    def __init__(self, message: str = "account is banned") -> None:
        super().__init__(message)
