"""Login throttling (README Authentication, "Throttling"): attempts are reserved before the
password is hashed, so no burst gets past a limit; strangers cannot lock an owner out of a
device they signed in from, nor one person lock out everyone behind an address;
registrations per address; password hashing bounded per process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.auth.devices import COOKIE_NAME, DeviceTokens
from server.state import RUNTIME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, error_of, set_cookie_header
from tests.conftest import TEST_SECRET
from tests.support.auth import register, unique_email


@pytest.fixture
async def stranger() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with no cookie jar: never a known device of anyone."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def login(session: aiohttp.ClientSession, client: TestClient[Any, Any], email: str,
                password: str, address: str, **body: Any) -> aiohttp.ClientResponse:
    resp = await session.post(client.make_url(f"{API}/login"),
                              json={"email": email, "password": password, **body},
                              headers={"X-Forwarded-For": address})
    await resp.read()
    return resp


def throttled(make_client: ClientMaker, redis: bool = True, **limits: Any) -> Any:
    return make_client(redis=redis, trust_forwarded_for=True, auth_login_window_s=60,
                       **limits)


# --- reserved before hashing: no burst exceeds a limit ------------------------------------

@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_thirty_concurrent_guesses_get_exactly_the_limit_checked(
    make_client: ClientMaker, stranger: aiohttp.ClientSession, redis: bool
) -> None:
    client = await throttled(make_client, redis, auth_login_max_failures=5)
    reg = await register(client)
    answers = await asyncio.gather(*[
        login(stranger, client, reg.email, f"guess {i}", "198.51.100.1") for i in range(30)])
    counts = Counter(r.status for r in answers)
    assert counts == {401: 5, 429: 25}, counts
    assert client.server.app[RUNTIME].auth.passwords.peak <= 2  # PASSWORD_HASH_CONCURRENCY


async def test_concurrent_guesses_on_two_nodes_share_the_limit(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    node_a = await throttled(make_client, auth_login_max_failures=4)
    node_b = await throttled(make_client, auth_login_max_failures=4)
    reg = await register(node_a)
    answers = await asyncio.gather(*[
        login(stranger, node, reg.email, f"guess {i}", "198.51.100.2")
        for i in range(12) for node in (node_a, node_b)])
    assert Counter(r.status for r in answers) == {401: 4, 429: 20}


async def test_concurrent_wrong_current_passwords_are_limited_too(make_client: ClientMaker
                                                                  ) -> None:
    client = await make_client(auth_login_max_failures=3, auth_login_window_s=60)
    reg = await register(client)
    answers = await asyncio.gather(*[
        client.post(f"{API}/password/change", headers=reg.bearer,
                    json={"current_password": f"wrong {i}", "password": "brand new secret 9"})
        for i in range(20)])
    assert Counter(r.status for r in answers) == {403: 3, 429: 17}


async def test_concurrent_reset_requests_are_limited(make_client: ClientMaker) -> None:
    client = await make_client(password_forgot_per_hour=3)
    email = unique_email()
    answers = await asyncio.gather(*[
        client.post(f"{API}/password/forgot", json={"email": email}) for _ in range(15)])
    assert Counter(r.status for r in answers) == {202: 3, 429: 12}


async def test_a_successful_login_does_not_count_and_clears_its_pair(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=2)
    reg = await register(client)
    for _ in range(3):
        assert (await login(stranger, client, reg.email, "bad pass", "192.0.2.1")).status == 401
        assert (await login(stranger, client, reg.email, reg.password, "192.0.2.1")
                ).status == 200
    assert (await login(stranger, client, reg.email, "bad pass", "192.0.2.1")).status == 401
    assert (await login(stranger, client, reg.email, "bad pass", "192.0.2.1")).status == 401
    resp = await login(stranger, client, reg.email, reg.password, "192.0.2.1")
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60


# --- one address is not everyone behind it -------------------------------------------------

@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_one_person_at_an_address_does_not_lock_out_their_colleagues(
    make_client: ClientMaker, stranger: aiohttp.ClientSession, redis: bool
) -> None:
    client = await throttled(make_client, redis, auth_login_max_failures=3,
                             auth_login_address_max_failures=8)
    typo, colleague = await register(client), await register(client)
    office = "203.0.113.7"
    for _ in range(3):
        assert (await login(stranger, client, typo.email, "typo typo", office)).status == 401
    assert (await login(stranger, client, typo.email, typo.password, office)).status == 429
    # The same office address, another account: in.
    assert (await login(stranger, client, colleague.email, colleague.password, office)
            ).status == 200
    # The typist from home: in (the pair is (email, address)).
    assert (await login(stranger, client, typo.email, typo.password, "192.0.2.50")
            ).status == 200


async def test_an_address_spraying_many_accounts_is_stopped_at_the_address_limit(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=3,
                             auth_login_address_max_failures=6)
    reg = await register(client)
    sprayer = "203.0.113.66"
    for _ in range(6):
        assert (await login(stranger, client, unique_email(), "guessing", sprayer)
                ).status == 401
    resp = await login(stranger, client, reg.email, reg.password, sprayer)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await login(stranger, client, reg.email, reg.password, "192.0.2.10")
            ).status == 200


async def test_forwarded_for_is_ignored_unless_trusted(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await make_client(auth_login_max_failures=100, auth_login_address_max_failures=2,
                               auth_login_window_s=60)
    for i in range(2):
        resp = await login(stranger, client, unique_email(), "guessing", f"198.51.100.{i}")
        assert resp.status == 401
    # Spoofed hops changed nothing: the peer address is throttled.
    resp = await login(stranger, client, unique_email(), "x" * 9, "198.51.100.200")
    assert resp.status == 429


# --- strangers cannot lock the owner out of a known device ----------------------------------

async def fill_the_email_limit(client: TestClient[Any, Any], stranger: aiohttp.ClientSession,
                               email: str, count: int) -> None:
    for i in range(count):  # each from another address: only the per-email limit fills
        assert (await login(stranger, client, email, "guess!!", f"198.51.100.{i + 1}")
                ).status == 401


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_strangers_cannot_lock_the_owner_out_of_a_device_they_used_before(
    make_client: ClientMaker, stranger: aiohttp.ClientSession, redis: bool
) -> None:
    client = await throttled(make_client, redis, auth_login_max_failures=3,
                             auth_login_email_max_failures=4)
    reg = await register(client)
    first = await login(stranger, client, reg.email, reg.password, "192.0.2.1")
    device_token = (await first.json())["device_token"]
    await fill_the_email_limit(client, stranger, reg.email, 4)

    # A client that never signed in to the account: refused, told the way out.
    resp = await login(stranger, client, reg.email, reg.password, "192.0.2.200")
    assert resp.status == 429
    error = await error_of(resp)
    assert error["code"] == "rate_limited" and "reset your password" in error["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # The owner's app, sending the token its earlier login got: in, from any address.
    resp = await login(stranger, client, reg.email, reg.password, "192.0.2.201",
                       device_token=device_token)
    assert resp.status == 200
    # ... which cleared what the strangers piled up.
    resp = await login(stranger, client, reg.email, reg.password, "192.0.2.202")
    assert resp.status == 200


async def test_a_browser_is_known_by_its_device_cookie(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=3,
                             auth_login_email_max_failures=2)
    reg = await register(client)  # the client's cookie jar now holds the device cookie
    await fill_the_email_limit(client, stranger, reg.email, 2)
    assert (await login(stranger, client, reg.email, reg.password, "192.0.2.7")).status == 429
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password},
                             headers={"X-Forwarded-For": "192.0.2.8"})
    assert resp.status == 200
    header = set_cookie_header(resp, COOKIE_NAME)
    assert "HttpOnly" in header and "Path=/api/v1/auth" in header


async def test_a_known_device_has_a_failure_limit_of_its_own(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=2,
                             auth_login_email_max_failures=50)
    reg = await register(client)
    token = (await (await login(stranger, client, reg.email, reg.password, "192.0.2.1")
                    ).json())["device_token"]
    for i in range(2):  # a stolen phone guessing from ever-new addresses
        assert (await login(stranger, client, reg.email, "guess!!", f"198.51.100.{i}",
                            device_token=token)).status == 401
    resp = await login(stranger, client, reg.email, reg.password, "198.51.100.9",
                       device_token=token)
    assert resp.status == 429
    # Other clients are not affected by that device's failures.
    assert (await login(stranger, client, reg.email, reg.password, "192.0.2.3")).status == 200


async def test_forged_expired_and_other_accounts_device_tokens_are_strangers(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=5,
                             auth_login_email_max_failures=2)
    reg, other = await register(client), await register(client)
    others_token = (await (await login(stranger, client, other.email, other.password,
                                       "192.0.2.1")).json())["device_token"]
    own = DeviceTokens(TEST_SECRET, None, 3600)
    expired = own.issue(reg.user_id, now=0)
    forged = DeviceTokens("another secret key of 32 characters!!", None, 3600).issue(
        reg.user_id)
    await fill_the_email_limit(client, stranger, reg.email, 2)
    for token in (others_token, expired, forged, "garbage", "a.b.c.d"):
        resp = await login(stranger, client, reg.email, reg.password, "192.0.2.9",
                           device_token=token)
        assert resp.status == 429, token
    good = own.issue(reg.user_id)
    resp = await login(stranger, client, reg.email, reg.password, "192.0.2.9",
                       device_token=good)
    assert resp.status == 200


async def test_unknown_emails_are_throttled_like_known_ones(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    client = await throttled(make_client, auth_login_max_failures=2)
    email = unique_email()
    answers = [await login(stranger, client, email, "guessing", "192.0.2.4") for _ in range(3)]
    assert [r.status for r in answers] == [401, 401, 429]


# --- registrations, and hashing per process ---------------------------------------------------

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


async def test_password_hashing_is_bounded_per_process(
    make_client: ClientMaker, stranger: aiohttp.ClientSession
) -> None:
    # Slow hashes (~tens of ms each), one at a time, two may wait: a burst of 24 logins
    # gets the rest refused at once with 503 instead of queueing.
    client = await make_client(password_hash_concurrency=1, password_hash_queue=2,
                               password_hash_time_cost=20, password_hash_memory_kib=4096)
    reg = await register(client)
    passwords = client.server.app[RUNTIME].auth.passwords
    answers = await asyncio.gather(*[
        login(stranger, client, reg.email, f"guess {i}", "192.0.2.5") for i in range(24)])
    counts = Counter(r.status for r in answers)
    assert set(counts) == {401, 503} and counts[401] >= 3, counts
    busy = next(r for r in answers if r.status == 503)
    assert busy.headers["Retry-After"] == "1"
    assert passwords.peak == 1 and passwords.refused == counts[503]
    # The refused attempts were never checked, so they did not count as failures.
    client2 = await make_client(auth_login_max_failures=counts[401] + 1,
                                auth_login_window_s=60)
    resp = await login(stranger, client2, reg.email, reg.password, "192.0.2.5")
    assert resp.status == 200
