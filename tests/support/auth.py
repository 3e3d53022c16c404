"""Register a user through the real HTTP route: the starting point of every authenticated test.

    reg = await register(client)
    await client.get("/api/v1/auth/me", headers=reg.bearer)
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient

from tests.conftest import TEST_ORIGIN

REGISTER = "/api/v1/auth/register"


class Registered(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    access_token: str
    refresh_token: str
    cookies: dict[str, str]
    """Cookies the register answer set (the session cookie), name → value."""
    email: str = ""
    password: str = ""

    @property
    def bearer(self) -> dict[str, str]:
        """Headers authenticating as this user with the access token."""
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    client: TestClient[Any, Any],
    email: str | None = None,
    password: str = "correct horse 1",
    display_name: str = "Test",
) -> Registered:
    """Register through ``POST /api/v1/auth/register`` (as the allowed browser origin, so the
    session cookie lands in the client's cookie jar too); fails the test unless 201."""
    email = email or unique_email()
    resp = await client.post(
        REGISTER,
        json={"email": email, "password": password, "display_name": display_name},
        headers={"Origin": TEST_ORIGIN},
    )
    body = await resp.json()
    assert resp.status == 201, body
    return Registered(
        user_id=body["user"]["id"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        cookies={name: morsel.value for name, morsel in resp.cookies.items()},
        email=email,
        password=password,
    )
