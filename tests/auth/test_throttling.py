"""Failed logins per email and per address, registrations per address: 429 with Retry-After."""

from __future__ import annotations

import pytest

from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, error_of
from tests.support.auth import register, unique_email


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_failed_logins_per_email_are_throttled(make_client: ClientMaker, redis: bool) -> None:
    client = await make_client(redis=redis, auth_login_max_failures=3, auth_login_window_s=60,
                               trust_forwarded_for=True)
    reg = await register(client)
    for i in range(3):
        # Each attempt from another address: only the per-email counter can trip.
        resp = await client.post(f"{API}/login", json={"email": reg.email, "password": "bad pass"},
                                 headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        assert resp.status == 401
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password},
                             headers={"X-Forwarded-For": "198.51.100.99"})
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Another account from the same addresses is not affected.
    other = await register(client)
    resp = await client.post(f"{API}/login",
                             json={"email": other.email, "password": other.password},
                             headers={"X-Forwarded-For": "198.51.100.1"})
    assert resp.status == 200


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_failed_logins_per_address_are_throttled(
    make_client: ClientMaker, redis: bool
) -> None:
    client = await make_client(redis=redis, auth_login_max_failures=3, auth_login_window_s=60,
                               trust_forwarded_for=True)
    reg = await register(client)
    attacker = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    for _ in range(3):
        resp = await client.post(f"{API}/login",
                                 json={"email": unique_email(), "password": "guessing"},
                                 headers=attacker)
        assert resp.status == 401
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password},
                             headers=attacker)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    # The account's owner from elsewhere still gets in.
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password},
                             headers={"X-Forwarded-For": "192.0.2.10"})
    assert resp.status == 200


async def test_forwarded_for_is_ignored_unless_trusted(make_client: ClientMaker) -> None:
    client = await make_client(auth_login_max_failures=2, auth_login_window_s=60)
    for i in range(2):
        resp = await client.post(f"{API}/login",
                                 json={"email": unique_email(), "password": "guessing"},
                                 headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert resp.status == 401
    # Spoofed hops changed nothing: the peer address is throttled.
    resp = await client.post(f"{API}/login", json={"email": unique_email(), "password": "x" * 9},
                             headers={"X-Forwarded-For": "198.51.100.200"})
    assert resp.status == 429


async def test_a_successful_login_clears_the_email_counter(make_client: ClientMaker) -> None:
    client = await make_client(auth_login_max_failures=2, auth_login_window_s=60,
                               trust_forwarded_for=True)
    reg = await register(client)
    for i in range(3):
        resp = await client.post(f"{API}/login", json={"email": reg.email, "password": "bad pass"},
                                 headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert resp.status == 401
        resp = await client.post(f"{API}/login",
                                 json={"email": reg.email, "password": reg.password},
                                 headers={"X-Forwarded-For": f"192.0.2.{i}"})
        assert resp.status == 200


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_registrations_per_address_are_throttled(
    make_client: ClientMaker, redis: bool
) -> None:
    client = await make_client(redis=redis, auth_register_per_hour=2)
    await register(client)
    await register(client)
    resp = await client.post(f"{API}/register", json={
        "email": unique_email(), "password": "correct horse 1", "display_name": "Third"})
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "rate_limited"
    assert 3000 < int(resp.headers["Retry-After"]) <= 3600
