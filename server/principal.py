"""Who is calling: the result of verifying any credential (token, cookie, hello.token).

Refused credentials raise ``server.errors.InvalidCredential`` (401 / close 4001) or
``AccountBanned`` (403 / close 4003)."""

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
