"""The whole lifecycle through the HTTP routes: native clients (tokens), browsers (cookie)."""

from __future__ import annotations

import asyncpg

from server.auth.sessions import COOKIE_NAME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, BROWSER, error_of
from tests.support.auth import register


async def test_token_lifecycle_register_me_refresh_reuse_logout(
    make_client: ClientMaker,
) -> None:
    client = await make_client()
    reg = await register(client, email="Pet.Owner@Example.COM", display_name="  Rex's human ")

    resp = await client.get(f"{API}/me", headers=reg.bearer)
    assert resp.status == 200
    assert await resp.json() == {"user": {
        "id": reg.user_id, "display_name": "Rex's human", "role": "user",
        "email": "pet.owner@example.com", "email_verified": False,
    }}

    # Refresh: a new pair, the old refresh token spent.
    resp = await client.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    assert resp.status == 200
    first = await resp.json()
    assert first["refresh_token"] != reg.refresh_token
    assert first["user"]["email"] == "pet.owner@example.com"
    assert first["expires_at"].endswith("Z")
    resp = await client.get(f"{API}/me",
                            headers={"Authorization": f"Bearer {first['access_token']}"})
    assert resp.status == 200

    # The newest token refreshes once more, fine.
    resp = await client.post(f"{API}/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 200
    second = await resp.json()

    # Reusing the original (spent) token: 401, and the whole family is revoked ...
    resp = await client.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "unauthorized"
    # ... including the newest refresh token and every access token of the session.
    resp = await client.post(f"{API}/refresh", json={"refresh_token": second["refresh_token"]})
    assert resp.status == 401
    for token in (reg.access_token, second["access_token"]):
        resp = await client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401

    # A fresh login, then logout: 204, and the session's credentials are dead.
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    assert resp.status == 200
    login = await resp.json()
    bearer = {"Authorization": f"Bearer {login['access_token']}"}
    resp = await client.post(f"{API}/logout", json={"refresh_token": login["refresh_token"]},
                             headers=bearer)
    assert resp.status == 204
    resp = await client.get(f"{API}/me", headers=bearer)
    assert resp.status == 401
    resp = await client.post(f"{API}/refresh", json={"refresh_token": login["refresh_token"]})
    assert resp.status == 401


async def test_browser_lifecycle_with_the_session_cookie(make_client: ClientMaker) -> None:
    client = await make_client()
    reg = await register(client)
    assert COOKIE_NAME in reg.cookies

    # The cookie alone authenticates (the client's jar sends it).
    resp = await client.get(f"{API}/me")
    assert resp.status == 200
    assert (await resp.json())["user"]["id"] == reg.user_id

    # Logout by cookie (from the allowed origin, with no body): 204, cookie cleared.
    resp = await client.post(f"{API}/logout", headers=BROWSER)
    assert resp.status == 204
    assert resp.cookies[COOKIE_NAME].value == ""
    # The cleared cookie no longer authenticates, nor does the old value replayed.
    resp = await client.get(f"{API}/me")
    assert resp.status == 401
    client.session.cookie_jar.update_cookies({COOKIE_NAME: reg.cookies[COOKIE_NAME]})
    resp = await client.get(f"{API}/me")
    assert resp.status == 401
    # Logging out by cookie revoked the session, so its tokens died too.
    resp = await client.get(f"{API}/me", headers=reg.bearer)
    assert resp.status == 401


async def test_login_from_a_browser_sets_a_working_cookie(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    client.session.cookie_jar.clear()
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password},
                             headers=BROWSER)
    assert resp.status == 200
    assert COOKIE_NAME in resp.cookies
    resp = await client.get(f"{API}/me")
    assert resp.status == 200


async def test_logout_with_only_a_refresh_token_after_the_access_token_expired(
    make_client: ClientMaker,
) -> None:
    client = await make_client()
    reg = await register(client)
    client.session.cookie_jar.clear()
    resp = await client.post(f"{API}/logout", json={"refresh_token": reg.refresh_token},
                             headers={"Authorization": "Bearer expired.or.garbage"})
    assert resp.status == 204
    resp = await client.get(f"{API}/me", headers=reg.bearer)
    assert resp.status == 401
    # Nothing to identify: 401.
    resp = await client.post(f"{API}/logout", json={})
    assert resp.status == 401


async def test_passwords_are_stored_as_argon2id_and_tokens_hashed(
    make_client: ClientMaker, database_url: str
) -> None:
    client = await make_client()
    reg = await register(client)
    conn = await asyncpg.connect(database_url)
    try:
        pw_hash = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", reg.user_id)
        stored = await conn.fetch("SELECT token_hash FROM refresh_tokens")
        kind = await conn.fetchval("SELECT kind FROM sessions")
    finally:
        await conn.close()
    assert pw_hash.startswith("$argon2id$") and reg.password not in pw_hash
    assert len(stored) == 1 and reg.refresh_token.encode() not in bytes(stored[0]["token_hash"])
    assert kind == "cookie"  # registered from the allowed browser origin


async def test_login_rehashes_when_the_cost_settings_changed(
    make_client: ClientMaker, database_url: str
) -> None:
    client = await make_client()
    reg = await register(client)
    stronger = await make_client(password_hash_time_cost=2)
    resp = await stronger.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    assert resp.status == 200
    conn = await asyncpg.connect(database_url)
    try:
        pw_hash = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", reg.user_id)
    finally:
        await conn.close()
    assert ",t=2," in pw_hash
