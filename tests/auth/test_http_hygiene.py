"""CSRF for cookie-authenticated writes, CORS, security headers, cookie flags."""

from __future__ import annotations

import pytest

from server.auth.sessions import COOKIE_NAME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, BROWSER, error_of, set_cookie_header
from tests.conftest import TEST_ORIGIN
from tests.support.auth import register

FOREIGN = "https://evil.example"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # neither Origin nor Referer
        {"Origin": FOREIGN},
        {"Origin": "null"},
        {"Referer": f"{FOREIGN}/page"},
        {"Origin": FOREIGN, "Referer": f"{TEST_ORIGIN}/spoofed"},  # Origin wins
    ],
    ids=["missing", "foreign-origin", "null-origin", "foreign-referer", "origin-over-referer"],
)
async def test_cookie_authenticated_post_needs_an_allowed_origin(
    make_client: ClientMaker, headers: dict[str, str]
) -> None:
    client = await make_client(redis=False)
    await register(client)
    resp = await client.post(f"{API}/logout", headers=headers)
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "forbidden"
    # The session survived the refused request.
    assert (await client.get(f"{API}/me")).status == 200


async def test_cookie_post_from_allowed_referer_and_bearer_posts_pass(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    # Bearer requests carry no ambient credential: no origin needed.
    resp = await client.post(f"{API}/logout", headers=reg.bearer)
    assert resp.status == 204
    await register(client)
    resp = await client.post(f"{API}/logout", headers={"Referer": f"{TEST_ORIGIN}/settings"})
    assert resp.status == 204


async def test_cors_preflight_for_allowed_and_foreign_origins(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, authorization"}
    resp = await client.options(f"{API}/login", headers={**preflight, "Origin": TEST_ORIGIN})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == TEST_ORIGIN
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    resp = await client.options(f"{API}/login", headers={**preflight, "Origin": FOREIGN})
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert (await error_of(resp))["code"] == "forbidden"

    # Simple requests: the allowed origin is echoed (never *), a foreign one gets nothing.
    resp = await client.get("/healthz", headers=BROWSER)
    assert resp.headers["Access-Control-Allow-Origin"] == TEST_ORIGIN
    assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
    resp = await client.get("/healthz", headers={"Origin": FOREIGN})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Origin" in resp.headers.getall("Vary")


async def test_security_headers_on_every_response(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    for resp in (
        await client.get("/healthz"),
        await client.get("/no-such-route"),
        await client.post(f"{API}/login", data=b"x", headers={"Content-Type": "text/plain"}),
    ):
        csp = resp.headers["Content-Security-Policy"]
        assert csp == "default-src 'none'; frame-ancestors 'none'"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in resp.headers
    prod = await make_client(redis=False, environment="production")
    resp = await prod.get("/healthz")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_session_cookie_flags(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    resp = await client.post(f"{API}/register", json={
        "email": "c@example.com", "password": "correct horse 1", "display_name": "C"})
    header = set_cookie_header(resp, COOKIE_NAME).lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/" in header
    assert "secure" not in header.replace("samesite", "")
    assert resp.headers["Cache-Control"] == "no-store"

    prod = await make_client(redis=False, environment="production")
    resp = await prod.post(f"{API}/register", json={
        "email": "d@example.com", "password": "correct horse 1", "display_name": "D"})
    header = set_cookie_header(resp, COOKIE_NAME).lower()
    assert "secure" in header and "httponly" in header and "samesite=lax" in header
    # The cookie holds only an encrypted session id: nothing readable in it.
    value = resp.cookies[COOKIE_NAME].value
    assert "d@example.com" not in value and "user" not in value


async def test_openapi_describes_the_auth_routes_from_the_structs(
    make_client: ClientMaker,
) -> None:
    from openapi_spec_validator import validate

    client = await make_client(redis=False)
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for path in ("register", "login", "refresh", "logout", "me"):
        assert f"/api/v1/auth/{path}" in doc["paths"]
    register_op = doc["paths"]["/api/v1/auth/register"]["post"]
    assert register_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegisterRequest"}
    assert "409" in register_op["responses"]
    schemas = doc["components"]["schemas"]
    assert {"RegisterRequest", "AuthResponse", "ErrorBody", "User"} <= set(schemas)
    assert set(schemas["RegisterRequest"]["required"]) == {"email", "password", "display_name"}
