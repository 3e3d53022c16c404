"""What a browser front end on any site needs (issue #18 items 9 to 11): a stale cookie never
blocks a valid token and is cleared; SameSite is configurable; CORS passes tracing
headers and exposes the headers clients read; every URL in a response is absolute."""

from __future__ import annotations

import aiohttp

from protocol.codec import JSON
from server.auth.sessions import COOKIE_NAME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, BROWSER, set_cookie_header
from tests.conftest import TEST_ORIGIN
from tests.support.auth import register
from tests.support.ws import ProtocolSocket
from tests.uploads import images


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _cleared(resp: aiohttp.ClientResponse) -> bool:
    header = set_cookie_header(resp, COOKIE_NAME).lower()
    return "max-age=0" in header or "1970" in header


async def test_a_stale_cookie_never_blocks_a_valid_hello_token(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    stale = await register(client)
    await client.post(f"{API}/logout", headers=stale.bearer)  # that cookie's session is over
    fresh = await register(client)
    client.session.cookie_jar.clear()
    ws = await client.ws_connect("/ws", headers={
        "Cookie": _cookie_header(stale.cookies), "Origin": TEST_ORIGIN})
    sock = ProtocolSocket(ws, JSON)
    welcome = await sock.hello(token=fresh.access_token)
    assert welcome.user_id == fresh.user_id
    await sock.close()


async def test_the_upgrade_clears_a_stale_cookie(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    stale = await register(client)
    await client.post(f"{API}/logout", headers=stale.bearer)
    client.session.cookie_jar.clear()
    async with aiohttp.ClientSession() as http:
        url = str(client.make_url("/ws"))
        async with http.ws_connect(url, headers={"Cookie": _cookie_header(stale.cookies),
                                                 "Origin": TEST_ORIGIN}) as ws:
            # The 101 answer expires the cookie (browsers apply Set-Cookie on upgrades).
            assert _cleared(ws._response)


async def test_logout_with_a_stale_cookie_clears_it(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    user = await register(client)
    await client.post(f"{API}/logout", headers=user.bearer)
    client.session.cookie_jar.clear()
    resp = await client.post(f"{API}/logout", headers={
        **BROWSER, "Cookie": _cookie_header(user.cookies)})
    assert resp.status == 401
    assert _cleared(resp)
    # A stale cookie with a valid refresh token: the token alone logs out.
    other = await register(client)
    await client.post(f"{API}/logout", headers=other.bearer)
    again = await register(client)
    client.session.cookie_jar.clear()
    resp = await client.post(f"{API}/logout", json={"refresh_token": again.refresh_token},
                             headers={**BROWSER, "Cookie": _cookie_header(other.cookies)})
    assert resp.status == 204


async def test_a_stale_cookie_with_a_bearer_token_is_answered_for_the_token(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    stale = await register(client)
    await client.post(f"{API}/logout", headers=stale.bearer)
    fresh = await register(client)
    client.session.cookie_jar.clear()
    resp = await client.get(f"{API}/me", headers={
        **fresh.bearer, "Cookie": _cookie_header(stale.cookies)})
    assert resp.status == 200
    assert (await resp.json())["user"]["id"] == fresh.user_id
    resp = await client.get(f"{API}/me", headers={"Cookie": _cookie_header(stale.cookies)})
    assert resp.status == 401 and _cleared(resp)


async def test_samesite_none_for_cross_site_front_ends_is_always_secure(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False, cookie_samesite="none")
    resp = await client.post(f"{API}/register", json={
        "email": "x-site@example.com", "password": "correct horse 1", "display_name": "X"})
    header = set_cookie_header(resp, COOKIE_NAME).lower()
    assert "samesite=none" in header and "secure" in header.replace("samesite", "")


async def test_cors_passes_tracing_headers_and_exposes_what_clients_read(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    resp = await client.options(f"{API}/login", headers={
        "Origin": TEST_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, traceparent, x-bad header"})
    assert resp.status == 204
    allowed = [h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")]
    assert "traceparent" in allowed and "content-type" in allowed
    assert "x-bad header" not in allowed
    resp = await client.get("/healthz", headers=BROWSER)
    exposed = resp.headers["Access-Control-Expose-Headers"]
    for name in ("Retry-After", "WWW-Authenticate", "ETag", "X-Request-Id"):
        assert name in exposed


async def test_upload_urls_are_absolute(make_client: ClientMaker) -> None:
    for public_url in ("", "https://api.petspark.example"):
        client = await make_client(redis=False, public_url=public_url)
        user = await register(client)
        form = aiohttp.FormData()
        form.add_field("purpose", "pet_photo")
        form.add_field("file", images.png(), filename="p.png", content_type="image/png")
        resp = await client.post("/api/v1/uploads", data=form, headers=user.bearer)
        assert resp.status == 201
        url = (await resp.json())["upload"]["url"]
        expected = public_url or f"http://{client.host}:{client.port}"
        assert url.startswith(expected + "/"), url
        resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
            "content_type": "image/png", "size": 100, "purpose": "pet_photo"})
        assert (await resp.json())["url"].startswith(expected + "/")
