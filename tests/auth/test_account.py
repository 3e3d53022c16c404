"""The account routes (PROTOCOL §9) through HTTP, with the mail received by a real SMTP
server on loopback (aiosmtpd) — or, without SMTP_URL, written as .eml files."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from protocol.chat import ChatHistory, ChatSend
from protocol.lost import LostReport, LostSightingCommand, LostSightings, LostWatch
from protocol.notifications import DevicesRegister
from protocol.objects import Platform
from protocol.types import Location
from server.auth.account import AccountService
from server.state import RUNTIME
from tests.auth.conftest import ClientMaker
from tests.auth.helpers import API, BROWSER, error_of
from tests.domain.conftest import User, cid, make_match
from tests.support.auth import Registered, register
from tests.support.smtp import SmtpServer
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, open_session
from tests.uploads.images import png

PUBLIC = "https://app.petspark.test"
FCM_TOKEN = "fcm-device:" + "A1b2_C3d4-" * 12


def mail_settings(smtp: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {"smtp_url": f"smtp://127.0.0.1:{smtp.port}", "public_url": PUBLIC,
            "mail_from": "PetSpark <no-reply@petspark.test>", **extra}


def account(client: TestClient[Any, Any]) -> AccountService:
    return client.server.app[RUNTIME].account


def link_token(message: email.message.EmailMessage, path: str) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(re.escape(PUBLIC + path) + r"\?token=([A-Za-z0-9_%-]+)", text.get_content())
    assert found, text.get_content()
    return found.group(1).replace("%3D", "=")


def mails_to(smtp: SmtpServer, address: str) -> list[email.message.EmailMessage]:
    with smtp.lock:
        return [m.message for m in smtp.messages if address in m.rcpt_tos]


async def mail_for(smtp: SmtpServer, address: str, subject_part: str,
                   timeout: float = 10.0) -> email.message.EmailMessage:
    found: list[email.message.EmailMessage] = []

    def arrived() -> bool:
        found[:] = [m for m in mails_to(smtp, address) if subject_part in m["Subject"]]
        return bool(found)

    await until(arrived, timeout=timeout, what=f"a mail '{subject_part}' to {address}")
    return found[-1]


async def me(client: TestClient[Any, Any], reg: Registered | dict[str, str]
             ) -> aiohttp.ClientResponse:
    headers = reg.bearer if isinstance(reg, Registered) else reg
    return await client.get(f"{API}/me", headers=headers)


async def test_email_verification_round_trip(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    client = await make_client(**mail_settings(smtp_server))
    reg = await register(client, display_name="Rex's human")
    body = await (await me(client, reg)).json()
    assert body["user"]["email_verified"] is False

    resp = await client.post(f"{API}/email/verify-request", headers=reg.bearer)
    assert resp.status == 202 and await resp.read() == b""
    mail = await mail_for(smtp_server, reg.email, "Confirm")
    assert mail["From"] == "PetSpark <no-reply@petspark.test>"
    assert mail.get_body(("html",)) is not None
    token = link_token(mail, "/verify-email")

    resp = await client.post(f"{API}/email/verify", json={"token": token})
    assert resp.status == 200
    user = (await resp.json())["user"]
    assert user["id"] == reg.user_id and user["email_verified"] is True
    assert (await (await me(client, reg)).json())["user"]["email_verified"] is True
    # single-use; unknown is the same answer
    for spent in (token, "not-a-token"):
        resp = await client.post(f"{API}/email/verify", json={"token": spent})
        assert resp.status == 400
        assert await error_of(resp) == {"code": "bad_request",
                                        "message": "token: invalid, expired or already used",
                                        "field": "token"}
    resp = await client.post(f"{API}/email/verify-request", headers=reg.bearer)
    assert resp.status == 409
    # unauthenticated: 401
    client.session.cookie_jar.clear()
    assert (await client.post(f"{API}/email/verify-request")).status == 401


async def test_expired_tokens_are_refused_and_requests_throttled(
    make_client: ClientMaker, smtp_server: SmtpServer, database_url: str,
) -> None:
    client = await make_client(**mail_settings(smtp_server, email_verify_per_hour=2))
    reg = await register(client)
    for _ in range(2):
        assert (await client.post(f"{API}/email/verify-request", headers=reg.bearer)).status \
            == 202
    resp = await client.post(f"{API}/email/verify-request", headers=reg.bearer)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    await until(lambda: len(mails_to(smtp_server, reg.email)) == 2, what="two mails")
    token = link_token(mails_to(smtp_server, reg.email)[0], "/verify-email")
    conn = await asyncpg.connect(database_url)
    try:  # time passes: the link's hour is over
        await conn.execute("UPDATE account_tokens SET expires_at = now() - interval '1 s'")
        stored = await conn.fetch("SELECT token_hash FROM account_tokens")
    finally:
        await conn.close()
    assert all(token.encode() not in bytes(r["token_hash"]) for r in stored)  # hashed at rest
    resp = await client.post(f"{API}/email/verify", json={"token": token})
    assert resp.status == 400


async def forgot(client: TestClient[Any, Any], address: str) -> aiohttp.ClientResponse:
    return await client.post(f"{API}/password/forgot", json={"email": address})


def comparable(resp: aiohttp.ClientResponse, body: bytes) -> tuple[Any, ...]:
    varying = {"date", "x-request-id"}
    return (resp.status, body, sorted((k.lower(), v) for k, v in resp.headers.items()
                                      if k.lower() not in varying))


async def test_forgot_answers_the_same_for_known_and_unknown_addresses(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    client = await make_client(**mail_settings(smtp_server))
    reg = await register(client)
    known = await forgot(client, reg.email.upper())
    known_body = await known.read()
    unknown = await forgot(client, "nobody-here@example.com")
    unknown_body = await unknown.read()
    assert known.status == 202
    assert comparable(known, known_body) == comparable(unknown, unknown_body)
    await mail_for(smtp_server, reg.email, "Reset")
    await account(client).idle()  # every queued job has run
    assert mails_to(smtp_server, "nobody-here@example.com") == []
    assert len(smtp_server.messages) == 1
    resp = await forgot(client, "not an address")
    assert resp.status == 400


async def test_forgot_is_throttled_per_email_known_or_not(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    client = await make_client(**mail_settings(smtp_server, password_forgot_per_hour=2,
                                               password_forgot_per_address_per_hour=5))
    reg = await register(client)
    for address in (reg.email, "ghost@example.com"):
        assert [(await forgot(client, address)).status for _ in range(3)] == [202, 202, 429]
    # per client address: 4 accepted so far, one more, then 429 for any email
    assert (await forgot(client, "third@example.com")).status == 202
    resp = await forgot(client, "fourth@example.com")
    assert resp.status == 429 and "Retry-After" in resp.headers


async def test_reset_sets_the_password_revokes_every_session_and_closes_sockets_on_every_node(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    node_a = await make_client(**mail_settings(smtp_server))
    node_b = await make_client(**mail_settings(smtp_server))
    reg = await register(node_a, display_name="Forgetful")
    resp = await node_b.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    other = await resp.json()
    sock_a = await open_session(node_a, reg.access_token)
    sock_b = await open_session(node_b, other["access_token"])

    assert (await forgot(node_a, reg.email)).status == 202
    token = link_token(await mail_for(smtp_server, reg.email, "Reset"), "/reset-password")
    resp = await node_b.post(f"{API}/password/reset",
                             json={"token": token, "password": "short"})
    assert resp.status == 400 and (await error_of(resp))["message"].startswith("password:")
    resp = await node_b.post(f"{API}/password/reset",
                             json={"token": token, "password": "brand new secret 2"})
    assert resp.status == 204
    await sock_a.expect_close(4001)
    await sock_b.expect_close(4001)
    for token_ in (reg.access_token, other["access_token"]):
        assert (await me(node_a, {"Authorization": f"Bearer {token_}"})).status == 401
    resp = await node_a.post(f"{API}/refresh", json={"refresh_token": other["refresh_token"]})
    assert resp.status == 401
    resp = await node_a.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    assert resp.status == 401
    resp = await node_a.post(f"{API}/login",
                             json={"email": reg.email, "password": "brand new secret 2"})
    assert resp.status == 200
    assert (await resp.json())["user"]["email_verified"] is True  # the link proved the address
    resp = await node_a.post(f"{API}/password/reset",
                             json={"token": token, "password": "another secret 3"})
    assert resp.status == 400  # spent
    await mail_for(smtp_server, reg.email, "password was changed")


async def test_change_password_keeps_this_session_and_revokes_the_others(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    client = await make_client(**mail_settings(smtp_server))
    reg = await register(client)
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    other = await resp.json()
    other_sock = await open_session(client, other["access_token"])
    own_sock = await open_session(client, reg.access_token)
    url = f"{API}/password/change"
    resp = await client.post(url, headers=reg.bearer,
                             json={"current_password": "wrong one!", "password": "new secret 9"})
    assert resp.status == 403
    assert await error_of(resp) == {"code": "forbidden",
                                    "message": "current_password: wrong password",
                                    "field": "current_password"}
    resp = await client.post(url, headers=reg.bearer,
                             json={"current_password": reg.password, "password": reg.email})
    assert resp.status == 400
    resp = await client.post(url, headers=reg.bearer,
                             json={"current_password": reg.password, "password": "new secret 9"})
    assert resp.status == 204
    await other_sock.expect_close(4001)
    assert (await me(client, {"Authorization": f"Bearer {other['access_token']}"})).status == 401
    assert (await me(client, reg)).status == 200
    await own_sock.expect_nothing(0.2)
    resp = await client.post(f"{API}/login", json={"email": reg.email, "password": "new secret 9"})
    assert resp.status == 200
    await mail_for(smtp_server, reg.email, "password was changed")
    # cookie-authenticated: needs an allowed Origin (CSRF)
    resp = await client.post(url, cookies=reg.cookies,
                             json={"current_password": "new secret 9", "password": "x" * 12})
    assert resp.status == 403


async def test_wrong_passwords_on_account_routes_are_throttled(
    make_client: ClientMaker, smtp_server: SmtpServer,
) -> None:
    client = await make_client(**mail_settings(smtp_server, auth_login_max_failures=2))
    reg = await register(client)
    statuses = []
    for _ in range(3):
        resp = await client.delete("/api/v1/account", headers=reg.bearer,
                                   json={"password": "not the password"})
        statuses.append(resp.status)
    assert statuses == [403, 403, 429]


async def test_delete_account_removes_it_everywhere_and_keeps_what_it_sent(
    make_client: ClientMaker, smtp_server: SmtpServer, database_url: str,
) -> None:
    node_a = await make_client(**mail_settings(smtp_server))
    node_b = await make_client(**mail_settings(smtp_server))
    reg = await register(node_a, display_name="Leaving")
    partner_reg = await register(node_b, display_name="Staying")
    leaving = User(node_a, reg, await open_session(node_a, reg.access_token))
    staying = User(node_b, partner_reg, await open_session(node_b, partner_reg.access_token))
    resp = await node_a.post("/api/v1/uploads", headers=reg.bearer,
                             data=_form(png()))
    assert resp.status == 201, await resp.text()
    upload = (await resp.json())["upload"]
    pet = await leaving.pet("Rex", photo_ids=[upload["id"]])
    match = await make_match(leaving, pet, staying, await staying.pet("Luna"))
    sent = (await leaving.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                       client_msg_id="bye", body="goodbye!"))).message
    await staying.sock.expect("chat.message")
    await leaving.sock.expect("chat.message")
    alert = (await staying.cmd(LostReport(id=cid(), description="Luna ran off",
                                          location=Location(lat=52.5, lng=13.4),
                                          radius_m=1000))).alert
    sighting = (await leaving.cmd(LostSightingCommand(
        id=cid(), alert_id=alert.id, location=Location(lat=52.5, lng=13.4)))).sighting
    await leaving.cmd(LostWatch(id=cid(), location=Location(lat=48.1, lng=11.6),
                                radius_m=2000))
    await leaving.cmd(DevicesRegister(id=cid(), platform=Platform.FCM, token=FCM_TOKEN))
    second = await open_session(node_b, reg.access_token)
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetchrow("SELECT object_key, thumb_key FROM uploads WHERE id = $1",
                                   upload["id"])
    finally:
        await conn.close()
    storage = node_a.server.app[RUNTIME].deps.storage
    stored = [storage.path(keys["object_key"]), storage.path(keys["thumb_key"])]
    assert existing(stored) == 2

    resp = await node_a.delete("/api/v1/account", headers=reg.bearer,
                               json={"password": "wrong password"})
    assert resp.status == 403
    resp = await node_a.delete("/api/v1/account", headers=reg.bearer,
                               json={"password": reg.password})
    assert resp.status == 204
    await leaving.sock.expect_close(4003)
    await second.expect_close(4003)
    closed = await next_of(staying.sock, "conversation.closed")
    assert closed.conversation_id == match.conversation_id

    assert (await me(node_a, reg)).status == 401
    resp = await node_b.post(f"{API}/refresh", json={"refresh_token": reg.refresh_token})
    assert resp.status == 401
    resp = await node_b.post(f"{API}/login", json={"email": reg.email, "password": reg.password})
    assert resp.status == 401
    assert existing(stored) == 0

    # what it sent stays, from "Deleted user"
    history = await staying.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id))
    assert sent.id in [m.id for m in history.messages]
    sightings = await staying.cmd(LostSightings(id=cid(), alert_id=alert.id))
    assert [s.id for s in sightings.sightings] == [sighting.id]
    conn = await asyncpg.connect(database_url)
    try:
        user = await conn.fetchrow("SELECT display_name, email, deleted_at FROM users "
                                   "WHERE id = $1", reg.user_id)
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM pets WHERE owner_id = $1) AS pets,
                      (SELECT count(*) FROM uploads WHERE owner_id = $1) AS uploads,
                      (SELECT count(*) FROM lost_watches WHERE user_id = $1) AS watches,
                      (SELECT count(*) FROM devices WHERE user_id = $1) AS devices,
                      (SELECT count(*) FROM sessions WHERE user_id = $1) AS sessions,
                      (SELECT count(*) FROM notifications WHERE user_id = $1) AS notes,
                      (SELECT count(*) FROM events WHERE user_id = $1) AS events,
                      (SELECT count(*) FROM matches WHERE user_a = $1 OR user_b = $1)
                          AS matches""", reg.user_id)
    finally:
        await conn.close()
    assert user["display_name"] == "Deleted user" and user["deleted_at"] is not None
    assert reg.email not in user["email"]
    assert dict(counts) == {"pets": 0, "uploads": 0, "watches": 0, "devices": 0,
                            "sessions": 0, "notes": 0, "events": 0, "matches": 0}
    send = await staying.error(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                        client_msg_id="hello?", body="are you there?"))
    assert send.code == "conflict"

    await mail_for(smtp_server, reg.email, "deleted")
    again = await register(node_a, email=reg.email, display_name="Back again")
    assert again.user_id != reg.user_id


def existing(paths: list[Path]) -> int:
    return sum(1 for p in paths if p.exists())


async def next_of(sock: ProtocolSocket, type_: str) -> Any:
    """The next message of ``type_``, skipping other events on the way."""
    while True:
        message = sock.pending.pop(0) if sock.pending else await sock.receive()
        if message.wire_type() == type_:
            return message


def _form(data: bytes) -> aiohttp.FormData:
    fd = aiohttp.FormData()
    fd.add_field("purpose", "pet_photo")
    fd.add_field("file", data, filename="photo.png", content_type="image/png")
    return fd


async def test_without_smtp_mails_are_eml_files(make_client: ClientMaker, tmp_path: Path
                                                ) -> None:
    client = await make_client(public_url=PUBLIC)
    reg = await register(client)
    assert (await forgot(client, reg.email)).status == 202
    folder = Path(client.server.app[RUNTIME].deps.settings.data_path) / "mail"
    await until(lambda: folder.exists() and any(folder.glob("*.eml")), what="an .eml file")
    [path] = list(folder.glob("*.eml"))
    assert path.stat().st_mode & 0o777 == 0o600
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert message["To"].addresses[0].addr_spec == reg.email
    token = link_token(message, "/reset-password")
    resp = await client.post(f"{API}/password/reset",
                             json={"token": token, "password": "from the eml 1"},
                             headers=BROWSER)
    assert resp.status == 204


async def test_delete_account_removes_its_posts_listings_likes_and_applications(
    make_client: ClientMaker, database_url: str,
) -> None:
    from protocol.adoption import AdoptionApply, AdoptionDecide, AdoptionListing, AdoptionListPet
    from protocol.community import PostsComment, PostsCreate, PostsGet, PostsLike

    node = await make_client()
    reg = await register(node, display_name="Leaving")
    leaving = User(node, reg, await open_session(node, reg.access_token))
    other_reg = await register(node, display_name="Staying")
    staying = User(node, other_reg, await open_session(node, other_reg.access_token))
    here = Location(lat=52.5, lng=13.4)
    own_post = (await leaving.cmd(PostsCreate(id=cid(), body="mine"))).post
    their_post = (await staying.cmd(PostsCreate(id=cid(), body="theirs"))).post
    await leaving.cmd(PostsLike(id=cid(), post_id=their_post.id, like=True))
    await leaving.cmd(PostsComment(id=cid(), post_id=their_post.id, body="nice"))
    await leaving.cmd(PostsComment(id=cid(), post_id=their_post.id, body="very nice"))
    await staying.cmd(PostsComment(id=cid(), post_id=their_post.id, body="thanks"))
    own_listing = (await leaving.cmd(AdoptionListPet(
        id=cid(), pet_id=(await leaving.pet("Rex")).id, title="Rex", description="good dog",
        location=here))).listing
    listing = (await staying.cmd(AdoptionListPet(
        id=cid(), pet_id=(await staying.pet("Luna")).id, title="Luna", description="a cat",
        location=here))).listing
    application = (await leaving.cmd(AdoptionApply(id=cid(), listing_id=listing.id,
                                                   message="me please"))).application
    await staying.cmd(AdoptionDecide(id=cid(), application_id=application.id,
                                     decision="accept"))
    assert (await staying.cmd(AdoptionListing(id=cid(), listing_id=listing.id))
            ).listing.status == "pending"

    resp = await node.delete("/api/v1/account", headers=reg.bearer,
                             json={"password": reg.password})
    assert resp.status == 204

    post = (await staying.cmd(PostsGet(id=cid(), post_id=their_post.id))).post
    assert (post.like_count, post.comment_count) == (0, 1)
    gone = await staying.error(PostsGet(id=cid(), post_id=own_post.id))
    assert gone.code == "not_found"
    assert (await staying.error(AdoptionListing(id=cid(), listing_id=own_listing.id))
            ).code == "not_found"
    # The listing the account had been accepted for is available again.
    assert (await staying.cmd(AdoptionListing(id=cid(), listing_id=listing.id))
            ).listing.status == "available"
    conn = await asyncpg.connect(database_url)
    try:
        left = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM posts WHERE author_id = $1) AS posts,
                      (SELECT count(*) FROM post_likes WHERE user_id = $1) AS likes,
                      (SELECT count(*) FROM post_comments WHERE author_id = $1) AS comments,
                      (SELECT count(*) FROM adoption_listings WHERE lister_id = $1) AS listings,
                      (SELECT count(*) FROM adoption_applications WHERE applicant_id = $1)
                          AS applications""", reg.user_id)
    finally:
        await conn.close()
    assert dict(left) == {"posts": 0, "likes": 0, "comments": 0, "listings": 0,
                          "applications": 0}
