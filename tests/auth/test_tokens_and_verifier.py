"""Access tokens (expiry, tampering, key rotation) and the Verifier the gateway uses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.auth.sessions import COOKIE_NAME
from server.auth.tokens import AccessTokens
from server.errors import AccountBanned, InvalidCredential
from server.realtime.bus import Kick, decode
from server.state import RUNTIME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API
from tests.conftest import TEST_SECRET
from tests.support.auth import register
from tests.support.waiting import until

NEW_SECRET = "rotated-secret-key-" + "y" * 32
OTHER_SECRET = "unrelated-secret-key-" + "z" * 32


def _unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def cookie_request(app: web.Application, value: str | None) -> web.Request:
    headers = {"Cookie": f"{COOKIE_NAME}={value}"} if value is not None else {}
    return make_mocked_request("GET", "/ws", headers=headers, app=app)


async def test_expired_access_token_is_401(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    claims = client.app[RUNTIME].auth.tokens.verify(reg.access_token)
    expired, exp = client.app[RUNTIME].auth.tokens.issue(
        user_id=reg.user_id, role="user", session_id=claims.sid,
        now=datetime.now(UTC) - timedelta(hours=1), ttl_s=60,
    )
    assert exp < datetime.now(UTC)
    resp = await client.get(f"{API}/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status == 401
    with pytest.raises(InvalidCredential):
        await client.app[RUNTIME].verifier.from_bearer(expired)


async def test_tampered_and_foreign_tokens_are_refused(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    verifier = client.app[RUNTIME].verifier
    claims = jwt.decode(reg.access_token, options={"verify_signature": False})
    header = jwt.get_unverified_header(reg.access_token)
    for forged in (
        # Role escalation re-signed with a guessed key.
        jwt.encode({**claims, "role": "admin"}, b"g" * 32, algorithm="HS256", headers=header),
        # alg=none.
        _unsigned({"alg": "none", "kid": header["kid"]}, {**claims, "role": "admin"}),
        reg.access_token[:-2] + ("AA" if not reg.access_token.endswith("AA") else "BB"),
        reg.refresh_token,
    ):
        with pytest.raises(InvalidCredential):
            await verifier.from_bearer(forged)


async def test_key_rotation_keeps_old_tokens_until_they_expire(make_client: ClientMaker) -> None:
    old_app = await make_client(redis=False)
    reg = await register(old_app)

    # SECRET_KEY → PREVIOUS_SECRET_KEY, a new SECRET_KEY: old tokens and cookies still work.
    rotated = await make_client(redis=False, secret_key=NEW_SECRET, previous_secret_key=TEST_SECRET)
    principal = await rotated.app[RUNTIME].verifier.from_bearer(reg.access_token)
    assert principal.user_id == reg.user_id
    assert principal.expires_at is not None and principal.expires_at > datetime.now(UTC)
    resp = await rotated.get(f"{API}/me", headers=reg.bearer)
    assert resp.status == 200
    old_cookie = {"Cookie": f"{COOKIE_NAME}={reg.cookies[COOKIE_NAME]}"}
    resp = await rotated.get(f"{API}/me", headers=old_cookie)
    assert resp.status == 200
    # New tokens are signed with the new key (another kid), and verify.
    resp = await rotated.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    new_token = (await resp.json())["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(
        reg.access_token)["kid"]
    assert (await rotated.app[RUNTIME].verifier.from_bearer(new_token)).user_id == reg.user_id

    # Neither key matches: refused.
    unrelated = await make_client(redis=False, secret_key=OTHER_SECRET,
                                  previous_secret_key=NEW_SECRET)
    with pytest.raises(InvalidCredential):
        await unrelated.app[RUNTIME].verifier.from_bearer(reg.access_token)
    resp = await unrelated.get(f"{API}/me", headers=old_cookie)
    assert resp.status == 401


def test_token_keys_are_derived_per_purpose_not_the_raw_secret() -> None:
    tokens = AccessTokens(TEST_SECRET, None, 900)
    token, _ = tokens.issue(user_id="u", role="user", session_id="s")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, TEST_SECRET.encode(), algorithms=["HS256"])
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "role", "sid", "iat", "exp"}
    assert payload["exp"] - payload["iat"] == 900


async def test_verifier_from_bearer_cookie_and_check_active(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    app = client.app
    verifier = app[RUNTIME].verifier
    reg = await register(client)

    by_token = await verifier.from_bearer(reg.access_token)
    by_cookie = await verifier.from_cookie(cookie_request(app, reg.cookies[COOKIE_NAME]))
    assert by_cookie is not None
    assert (by_token.user_id, by_token.role) == (by_cookie.user_id, by_cookie.role) == (
        reg.user_id, "user")
    assert by_token.session_id == by_cookie.session_id
    assert by_cookie.expires_at is None
    await verifier.check_active(by_token)

    assert await verifier.from_cookie(cookie_request(app, None)) is None
    with pytest.raises(InvalidCredential):
        await verifier.from_cookie(cookie_request(app, "garbage"))

    # Revoked (logout): every form refuses with InvalidCredential.
    await app[RUNTIME].auth.logout(session_id=by_token.session_id, user_id=reg.user_id,
                 refresh_token=None)
    with pytest.raises(InvalidCredential) as info:
        await verifier.from_bearer(reg.access_token)
    assert not isinstance(info.value, AccountBanned)
    with pytest.raises(InvalidCredential):
        await verifier.from_cookie(cookie_request(app, reg.cookies[COOKIE_NAME]))
    with pytest.raises(InvalidCredential):
        await verifier.check_active(by_token)


async def test_verifier_reports_a_ban_as_banned(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    app = client.app
    reg = await register(client)
    principal = await app[RUNTIME].verifier.from_bearer(reg.access_token)
    await app[RUNTIME].auth.ban_user(reg.user_id)
    with pytest.raises(AccountBanned) as info:
        await app[RUNTIME].verifier.from_bearer(reg.access_token)
    assert info.value.close_code == 4003
    with pytest.raises(AccountBanned):
        await app[RUNTIME].verifier.from_cookie(cookie_request(app, reg.cookies[COOKIE_NAME]))
    with pytest.raises(AccountBanned):
        await app[RUNTIME].verifier.check_active(principal)


async def test_logout_reuse_and_ban_kick_sockets_on_every_node(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    app = client.app
    kicks: list[Kick] = []

    def on_message(payload: bytes) -> None:
        message = decode(payload)
        if isinstance(message, Kick):
            kicks.append(message)

    await app[RUNTIME].deps.node.broker.start(on_message, lambda: None)

    reg = await register(client)
    sid = (await app[RUNTIME].verifier.from_bearer(reg.access_token)).session_id
    await client.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    await client.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})  # reuse
    other = await register(client)
    other_sid = (await app[RUNTIME].verifier.from_bearer(other.access_token)).session_id
    await client.post(f"{API}/logout", headers=other.bearer)
    third = await register(client)
    await app[RUNTIME].auth.ban_user(third.user_id)
    await until(lambda: len(kicks) >= 3, what="three kicks")

    assert [msgspec.structs.asdict(k) for k in kicks] == [
        {"session_ids": (sid,), "user_ids": (), "connection_ids": (), "code": 4001,
         "reason": "refresh token reused"},
        {"session_ids": (other_sid,), "user_ids": (), "connection_ids": (), "code": 4001,
         "reason": "logout"},
        {"session_ids": (), "user_ids": (third.user_id,), "connection_ids": (), "code": 4003,
         "reason": "banned"},
    ]


async def test_role_comes_from_the_database(make_client: ClientMaker, database_url: str) -> None:
    import asyncpg

    client = await make_client(redis=False)
    reg = await register(client)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", reg.user_id)
    finally:
        await conn.close()
    principal = await client.app[RUNTIME].verifier.from_bearer(reg.access_token)
    assert principal.role == "admin" and principal.is_admin
