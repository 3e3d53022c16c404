"""``POST /api/v1/live/livekit-webhook``: LiveKit tells us about its rooms.

LiveKit signs each webhook with the API key/secret the server shares with it: the
``Authorization`` header is a JWT (HS256, ``iss`` = the API key) whose ``sha256`` claim
is the base64 SHA-256 of the exact body. ``livekit-api``'s ``WebhookReceiver`` checks
both; anything else is 401 and nothing changes. ``room_finished`` for a room
``live-<stream id>`` ends that stream (members get ``live.ended``) as if its host had.
Other events are acknowledged and ignored. The route is 404 unless LiveKit is
configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET).
"""

from __future__ import annotations

import logging

from aiohttp import web
from livekit.api.access_token import TokenVerifier
from livekit.api.webhook import WebhookReceiver

from server.domain.live.service import LiveService
from server.errors import BadRequest, InvalidCredential, NotFound
from server.state import RUNTIME

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


async def livekit_webhook(request: web.Request) -> web.Response:
    live = request.app[RUNTIME].commands.service(LiveService)
    livekit = live.media.livekit
    if livekit is None:
        raise NotFound("LiveKit is not configured on this server")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest("body: too large for a LiveKit webhook")
    raw = await request.read()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8") from None
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        auth = auth[7:]
    receiver = WebhookReceiver(TokenVerifier(livekit.api_key, livekit.api_secret))
    try:
        event = receiver.receive(body, auth)
    except Exception as exc:  # bad signature, body hash, expiry or JSON: all refused
        log.warning("livekit webhook refused", extra={"error": type(exc).__name__})
        raise InvalidCredential("webhook signature does not verify") from None
    ended = False
    if event.event == "room_finished" and event.room.name:
        try:
            ended = await live.media_room_finished(event.room.name)
        except NotFound:
            ended = False  # not one of our rooms
    log.info("livekit webhook", extra={"event": event.event, "room": event.room.name or None,
                                       "ended_stream": ended})
    return web.json_response({})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/live/livekit-webhook", livekit_webhook)
