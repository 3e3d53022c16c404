"""How the client authenticates the upgrade (PROTOCOL §2).

- ``auth="header"`` (default): ``Authorization: Bearer <token>`` on the upgrade.
- ``auth="hello"``: the token travels in ``hello.token``.
- No token: cookie authentication — pass ``cookies=`` (or a ``session=`` whose
  jar holds the session cookie) and ``origin=`` (the server requires an allowed
  ``Origin`` for cookie-authenticated upgrades).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

AuthMode = Literal["header", "hello"]
TokenProvider = Callable[[], Awaitable[str]]
"""An async callable returning a currently valid access token (e.g. from
``POST /api/v1/auth/refresh``, or a cached one while it is still fresh)."""


@dataclass
class Credentials:
    token: str | None = None
    auth: AuthMode = "header"
    headers: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None
    token_provider: TokenProvider | None = None

    def __post_init__(self) -> None:
        if self.auth not in ("header", "hello"):
            raise ValueError(f"auth must be 'header' or 'hello', not {self.auth!r}")

    def upgrade_headers(self) -> dict[str, str]:
        """Headers for the upgrade request."""
        headers = dict(self.headers)
        if self.token is not None and self.auth == "header":
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def hello_token(self) -> str | None:
        """The token for ``hello.token``, or None."""
        return self.token if self.auth == "hello" else None

    async def refresh(self) -> None:
        """Ask ``token_provider`` (if any) for a fresh token."""
        if self.token_provider is not None:
            self.token = await self.token_provider()
