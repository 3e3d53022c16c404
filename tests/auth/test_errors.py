"""Every error the auth routes answer, as JSON with PROTOCOL §4 codes."""

from __future__ import annotations

import pytest

from server.state import RUNTIME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, error_of
from tests.support.auth import register

GOOD = {"email": "a@example.com", "password": "correct horse 1", "display_name": "A"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "correct horse 1", "display_name": "A"}, "email: required"),
        ({**GOOD, "email": 5}, "email: expected str, got int"),
        ({**GOOD, "email": "not-an-address"}, "email:"),
        ({**GOOD, "email": "a@localhost"}, "email:"),
        ({**GOOD, "email": "x" * 250 + "@example.com"}, "email:"),
        ({**GOOD, "password": "short"}, "password:"),
        ({**GOOD, "password": "p" * 129}, "password:"),
        ({**GOOD, "password": "A@Example.com"}, "password: must not be the email"),
        ({**GOOD, "display_name": "   "}, "display_name:"),
        ({**GOOD, "display_name": "n" * 61}, "display_name:"),
        ({**GOOD, "display_name": None}, "display_name:"),
    ],
)
async def test_register_400_names_the_field(
    make_client: ClientMaker, body: dict[str, object], field: str
) -> None:
    client = await make_client(redis=False)
    resp = await client.post(f"{API}/register", json=body)
    assert resp.status == 400
    error = await error_of(resp)
    assert error["code"] == "bad_request"
    assert error["message"].startswith(field), error
    # The same field, machine-readable (decoder errors and the service's own checks).
    assert error["field"] == field.split(":")[0], error


async def test_malformed_json_and_wrong_shapes_are_400(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    for data in (b"{not json", b"[1, 2]", b"", b"null"):
        resp = await client.post(f"{API}/login", data=data,
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 400, data
        assert (await error_of(resp))["code"] == "bad_request"
    resp = await client.post(f"{API}/refresh", json={"refresh_token": 7})
    assert (await error_of(resp))["message"].startswith("refresh_token:")


async def test_non_json_body_is_415(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    resp = await client.post(f"{API}/login", data="email=a@example.com&password=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert (await error_of(resp))["code"] == "unsupported_media_type"
    resp = await client.post(f"{API}/register", data=b"{}", headers={"Content-Type": "text/plain"})
    assert resp.status == 415


async def test_body_over_max_request_bytes_is_json_413(make_client: ClientMaker) -> None:
    client = await make_client(redis=False, max_request_bytes=2048)
    big = {**GOOD, "display_name": "x" * 4000}
    resp = await client.post(f"{API}/register", json=big)
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "too_large"

    # Chunked (no Content-Length): bounded while reading.
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(10):
            yield b"p" * 1024
        yield b'", "display_name": "A"}'

    resp = await client.post(f"{API}/register", data=chunks(),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "too_large"


async def test_duplicate_email_is_409_case_insensitively(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    await register(client, email="dup@example.com")
    resp = await client.post(f"{API}/register", json={**GOOD, "email": "DUP@Example.com"})
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "conflict" and error["message"].startswith("email:")
    assert error["field"] == "email"


async def test_login_401_is_the_same_for_unknown_email_and_wrong_password(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    wrong = await client.post(f"{API}/login", json={"email": reg.email, "password": "nope nope"})
    unknown = await client.post(f"{API}/login",
                                json={"email": "ghost@example.com", "password": reg.password})
    assert wrong.status == unknown.status == 401
    assert await error_of(wrong) == await error_of(unknown) == {
        "code": "unauthorized", "message": "wrong email or password"}
    # Email is matched case-insensitively.
    resp = await client.post(f"{API}/login",
                             json={"email": reg.email.upper(), "password": reg.password})
    assert resp.status == 200


async def test_banned_user_gets_403_on_login_and_with_every_credential(
    make_client: ClientMaker,
) -> None:
    client = await make_client(redis=False)
    reg = await register(client)
    assert await client.app[RUNTIME].auth.ban_user(reg.user_id)
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "forbidden"
    # A wrong password still says 401: the ban is not revealed without the password.
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": "wrong one!"})
    assert resp.status == 401
    assert (await client.get(f"{API}/me", headers=reg.bearer)).status == 403
    assert (await client.get(f"{API}/me")).status == 403  # the cookie
    resp = await client.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    assert resp.status == 403
    # Unknown users: False, nothing raised.
    assert not await client.app[RUNTIME].auth.ban_user("00000000-0000-0000-0000-000000000000")
    assert not await client.app[RUNTIME].auth.ban_user("not-a-uuid")


async def test_unauthenticated_and_malformed_credentials_are_401(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    resp = await client.get(f"{API}/me")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Basic dXNlcjpwdw==", "Bearer", "Bearer not.a.jwt"):
        resp = await client.get(f"{API}/me", headers={"Authorization": header})
        assert resp.status == 401, header
        assert (await error_of(resp))["code"] == "unauthorized"
    client.session.cookie_jar.update_cookies({"petspark_session": "forged"})
    assert (await client.get(f"{API}/me")).status == 401
    resp = await client.post(f"{API}/refresh", json={"refresh_token": "never-issued"})
    assert resp.status == 401


async def test_errors_name_only_fields_the_route_takes(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    # A whole-body problem names no field.
    resp = await client.post(f"{API}/login", data=b"[1]",
                             headers={"Content-Type": "application/json"})
    assert "field" not in await error_of(resp)
    resp = await client.post(f"{API}/register", json={**GOOD, "password": 5})
    assert (await error_of(resp))["field"] == "password"
    # A query parameter is a field too; a message that starts with a word the route does
    # not take (``upload: …``) names none.
    reg = await register(client)
    resp = await client.get("/api/v1/uploads/00000000-0000-0000-0000-000000000000",
                            params={"variant": "huge"}, headers=reg.bearer)
    error = await error_of(resp)
    assert (resp.status, error["code"], error["field"]) == (400, "bad_request", "variant")
    resp = await client.get("/api/v1/uploads/00000000-0000-0000-0000-000000000000",
                            headers=reg.bearer)
    error = await error_of(resp)
    assert resp.status == 404 and "field" not in error, error


async def test_a_wrong_method_is_405_method_not_allowed(make_client: ClientMaker) -> None:
    client = await make_client(redis=False)
    resp = await client.get(f"{API}/login")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert await error_of(resp) == {"code": "method_not_allowed",
                                    "message": "Method Not Allowed"}
    resp = await client.delete("/api/v1/uploads/presign")
    assert (resp.status, (await error_of(resp))["code"]) == (405, "method_not_allowed")
