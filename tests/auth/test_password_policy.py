"""Common passwords are refused wherever a password is set (issue #17 item 15), from the
list shipped in the package (no network)."""

from __future__ import annotations

from importlib import resources

from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, error_of
from tests.support.auth import register, unique_email

COMMON = ["password1", "Sunshine", "QWERTYUIOP", "iloveyou", "1qaz2wsx", "trustno1"]


def test_the_list_ships_in_the_package_and_is_read_locally() -> None:
    from server.auth.policy import common_passwords, is_common_password

    shipped = resources.files("server.auth").joinpath("common_passwords.txt")
    assert shipped.is_file()
    assert len(common_passwords()) == 10_000
    assert all(8 <= len(p) <= 128 and p == p.lower() for p in common_passwords())
    assert is_common_password("PassWord1") and not is_common_password("correct horse 1")


async def test_register_refuses_common_passwords_naming_the_field(make_client: ClientMaker
                                                                   ) -> None:
    client = await make_client()
    for password in COMMON:
        resp = await client.post(f"{API}/register", json={
            "email": unique_email(), "password": password, "display_name": "Ann"})
        assert resp.status == 400, password
        error = await error_of(resp)
        assert error["code"] == "bad_request"
        assert error["message"].startswith("password: too common"), error
    resp = await client.post(f"{API}/register", json={
        "email": unique_email(), "password": "tabby likes tuna 7", "display_name": "Ann"})
    assert resp.status == 201


async def test_changing_to_a_common_password_is_refused(make_client: ClientMaker) -> None:
    client = await make_client()
    reg = await register(client)
    resp = await client.post(f"{API}/password/change", headers=reg.bearer, json={
        "current_password": reg.password, "password": "Football"})
    assert resp.status == 400
    assert (await error_of(resp))["message"].startswith("password: too common")
    # Logging in with an old, common password still works: only setting one is refused.
    resp = await client.post(f"{API}/login", json={"email": reg.email,
                                                   "password": reg.password})
    assert resp.status == 200
