"""Presence between matched users: ``presence.query`` and the ``presence`` ephemeral event.

Only users with a live match see each other's presence. Asking about anyone
else answers ``online: false`` (not ``not_found``): the answer then looks the
same whether the user exists, is offline, or is simply not matched, so presence
leaks nothing; a client may ask about its own id and gets the truth.
"""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from protocol.objects import PresenceState
from protocol.presence import PresenceEvent, PresenceResult
from server.domain.matching import store as matching_store
from server.realtime.control import send_ephemeral
from server.realtime.presence import Presence
from server.state import BROKER, DB

log = logging.getLogger(__name__)


async def query(conn: asyncpg.Connection, presence: Presence, user_id: str,
                user_ids: list[str]) -> PresenceResult:
    visible = set(await matching_store.select_matched_user_ids(conn, user_id))
    visible.add(user_id)
    asked = [u for u in dict.fromkeys(user_ids) if u in visible]
    online = await presence.online(asked) if asked else {}
    return PresenceResult(presence=[PresenceState(user_id=u, online=online.get(u, False))
                                    for u in user_ids])


async def announce(app: web.Application, user_id: str, online: bool) -> None:
    """Gateway presence listener: tell the user's matched users that they came online
    (first socket anywhere) or went offline (last socket gone)."""
    async with app[DB].acquire() as conn:
        others = await matching_store.select_matched_user_ids(conn, user_id)
    if others:
        await send_ephemeral(app[BROKER], others, PresenceEvent(user_id=user_id, online=online))
