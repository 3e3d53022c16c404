"""LIVE_MEDIA=livekit: access tokens checked against LiveKit's documented claims, and the
webhook's signature accepted or refused (signed the way a LiveKit server signs)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from livekit.api.access_token import AccessToken, TokenVerifier

from protocol.live import LiveJoin, LiveList, LiveSignalCommand
from protocol.objects import MediaKind, MediaRole, StreamStatus
from tests.conftest import AppClient
from tests.domain.conftest import cid, new_user
from tests.domain.live.helpers import go_live, join, next_of

KEY = "APIpetsparkTest"
SECRET = "livekit-test-secret-" + "s" * 24
URL = "wss://livekit.petspark.test"
TTL = 600
WEBHOOK = "/api/v1/live/livekit-webhook"

LIVEKIT = {"live_media": "livekit", "livekit_url": URL, "livekit_api_key": KEY,
           "livekit_api_secret": SECRET, "live_token_ttl_s": TTL, "live_p2p_max_viewers": 1}


def claims_of(token: str) -> dict[str, Any]:
    """Decoded as LiveKit's server does: HS256 with the API secret, ``iss`` the key."""
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=KEY)
    return claims


async def test_tokens_carry_livekits_claims_publish_for_the_host_only(
        app_client: AppClient) -> None:
    client = await app_client(**LIVEKIT)
    host = await new_user(client, "Ana")
    viewers = [await new_user(client, f"V{i}") for i in range(2)]
    started = await go_live(host)
    stream, publish = started.stream, started.publish
    room = f"live-{stream.id}"
    assert stream.media.kind == MediaKind.LIVEKIT
    assert stream.media.url == URL and stream.media.room == room
    assert publish.kind == MediaKind.LIVEKIT and publish.role == MediaRole.HOST
    assert publish.url == URL and publish.room == room and publish.identity == host.id
    assert publish.token is not None and publish.expires_at is not None

    claims = claims_of(publish.token)
    assert claims["sub"] == host.id and claims["iss"] == KEY and claims["name"] == "Ana"
    assert claims["exp"] - claims["nbf"] == TTL
    assert abs(claims["exp"] - publish.expires_at.timestamp()) <= 2
    assert claims["video"] == {"roomJoin": True, "room": room, "canPublish": True,
                               "canSubscribe": True, "canPublishData": True}
    # LiveKit's own verifier reads the same grants.
    grants = TokenVerifier(KEY, SECRET).verify(publish.token).video
    assert grants is not None and grants.room == room and grants.can_publish

    # No viewer cap with LiveKit (LIVE_P2P_MAX_VIEWERS=1 here does not apply).
    for viewer in viewers:
        view = (await join(viewer, stream.id)).view
        assert view.role == MediaRole.VIEWER and view.url == URL and view.room == room
        assert view.token is not None
        vc = claims_of(view.token)
        assert vc["sub"] == viewer.id and vc["iss"] == KEY
        assert vc["video"]["roomJoin"] is True and vc["video"]["room"] == room
        assert vc["video"]["canSubscribe"] is True
        assert vc["video"]["canPublish"] is False and vc["video"]["canPublishData"] is False
        verified = TokenVerifier(KEY, SECRET).verify(view.token).video
        assert verified is not None and not verified.can_publish
        assert not verified.can_publish_data
    # A token signed with another secret does not verify.
    try:
        jwt.decode(publish.token, "another secret, long enough for HS256", algorithms=["HS256"])
    except jwt.InvalidSignatureError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a foreign secret verified the token")

    # Signalling is for p2p streams only.
    err = await viewers[0].error(LiveSignalCommand(id=cid(), stream_id=stream.id, to=host.id,
                                                   data={"sdp": "x"}))
    assert err.code == "bad_request"


def signed(body: str, secret: str = SECRET, key: str = KEY) -> str:
    """The Authorization value a LiveKit server sends: a JWT whose sha256 claim is the
    base64 SHA-256 of the body."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return AccessToken(key, secret).with_sha256(digest).to_jwt()


def room_finished(stream_id: str) -> str:
    return json.dumps({"event": "room_finished", "id": "EV_test",
                       "room": {"sid": "RM_test", "name": f"live-{stream_id}"},
                       "createdAt": "1767000000"})


async def test_webhook_room_finished_ends_the_stream(app_client: AppClient) -> None:
    client = await app_client(**LIVEKIT)
    host, viewer = await new_user(client), await new_user(client)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)

    other = json.dumps({"event": "participant_joined", "room": {"name": f"live-{stream.id}"}})
    resp = await client.post(WEBHOOK, data=other, headers={
        "Authorization": signed(other), "Content-Type": "application/webhook+json"})
    assert resp.status == 200
    assert [s.id for s in (await viewer.cmd(LiveList(id=cid()))).streams] == [stream.id]

    body = room_finished(stream.id)
    resp = await client.post(WEBHOOK, data=body, headers={
        "Authorization": signed(body), "Content-Type": "application/webhook+json"})
    assert resp.status == 200, await resp.text()
    assert (await next_of(viewer.sock, "live.ended")).stream_id == stream.id
    assert (await next_of(host.sock, "live.ended")).stream_id == stream.id
    assert (await viewer.cmd(LiveList(id=cid()))).streams == []
    # Delivered twice (LiveKit retries): still 200, nothing more happens.
    resp = await client.post(WEBHOOK, data=body, headers={"Authorization": signed(body)})
    assert resp.status == 200
    # A room that is not a stream's is acknowledged and ignored.
    stray = json.dumps({"event": "room_finished", "room": {"name": "somebody-elses"}})
    resp = await client.post(WEBHOOK, data=stray, headers={"Authorization": signed(stray)})
    assert resp.status == 200


async def test_webhook_with_a_bad_signature_is_refused(app_client: AppClient) -> None:
    client = await app_client(**LIVEKIT)
    host, viewer = await new_user(client), await new_user(client)
    stream = (await go_live(host)).stream
    await join(viewer, stream.id)
    body = room_finished(stream.id)
    tampered = room_finished("00000000-0000-0000-0000-000000000000")
    attempts = [
        {"Authorization": signed(body, secret="not the secret " + "x" * 20)},
        {"Authorization": signed(body, key="APIsomeoneElse")},
        {"Authorization": signed(tampered)},  # signed for another body
        {"Authorization": "not a jwt"},
        {},
    ]
    for headers in attempts:
        resp = await client.post(WEBHOOK, data=body, headers=headers)
        assert resp.status == 401, headers
        assert (await resp.json())["error"]["code"] == "unauthorized"
    listed = await viewer.cmd(LiveList(id=cid()))
    assert [s.id for s in listed.streams] == [stream.id]
    assert listed.streams[0].status == StreamStatus.LIVE
    rejoin = await viewer.sock.command(LiveJoin(id=cid(), stream_id=stream.id))
    assert rejoin.stream.status == StreamStatus.LIVE


async def test_webhook_is_not_found_without_livekit(app_client: AppClient) -> None:
    client = await app_client()
    body = room_finished("00000000-0000-0000-0000-000000000000")
    resp = await client.post(WEBHOOK, data=body, headers={"Authorization": signed(body)})
    assert resp.status == 404
