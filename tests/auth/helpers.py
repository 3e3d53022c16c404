from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from aiohttp import ClientResponse

from tests.conftest import TEST_ORIGIN

API = "/api/v1/auth"
BROWSER = {"Origin": TEST_ORIGIN}


async def error_of(resp: ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def set_cookie_header(resp: ClientResponse, name: str) -> str:
    """The raw Set-Cookie header for ``name`` (flags included)."""
    for header in resp.headers.getall("Set-Cookie", []):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {resp.headers.getall('Set-Cookie', [])}")
