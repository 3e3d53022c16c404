"""Cross-node control messages on the broker: kick sockets of revoked sessions / banned users.

Publishers (auth, admin) call ``kick``; every node's hub receives the message
through its one broker subscription and closes the matching local sockets.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from server.realtime.broker import BrokerUnavailable
from server.state import BROKER

log = logging.getLogger(__name__)


class Kick(msgspec.Struct, tag="kick", tag_field="k", frozen=True):
    """Close every local socket of these sessions/users with ``code``."""

    session_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    code: int = 4003
    reason: str = "revoked"


async def kick(
    app: web.Application,
    *,
    session_ids: tuple[str, ...] = (),
    user_ids: tuple[str, ...] = (),
    code: int = 4003,
    reason: str = "revoked",
) -> None:
    """Ask every node to close the sockets of these sessions/users. Never raises."""
    message = Kick(session_ids=session_ids, user_ids=user_ids, code=code, reason=reason)
    try:
        await app[BROKER].publish(msgspec.msgpack.encode(message))
    except BrokerUnavailable as exc:
        # Sockets of a revoked session are also refused at their next token check.
        log.error("kick not published: broker unavailable", extra={"error": str(exc)})
