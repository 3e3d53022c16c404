"""Cross-node control: close sockets of revoked sessions / banned users, send ephemeral events.

Publishers (auth, admin, domain code) call these; every node's hub receives
the message through its one broker subscription and acts on its local sockets.
Neither function raises: a broker outage is logged (revoked sessions are also
refused at their next credential check; ephemeral events are best-effort).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from protocol.base import Event
from protocol.codec import JSON
from server.realtime import bus
from server.realtime.broker import Broker, BrokerUnavailable
from server.state import BROKER

log = logging.getLogger(__name__)


async def kick(
    app: web.Application,
    *,
    session_ids: tuple[str, ...] = (),
    user_ids: tuple[str, ...] = (),
    connection_ids: tuple[str, ...] = (),
    code: int = 4003,
    reason: str = "revoked",
) -> None:
    """Ask every node to close the sockets of these sessions/users/connections with ``code``."""
    message = bus.Kick(session_ids=session_ids, user_ids=user_ids,
                       connection_ids=connection_ids, code=code, reason=reason)
    await _publish(app[BROKER], bus.encode(message), "kick")


async def send_ephemeral(broker: Broker, user_ids: Iterable[str], event: Event) -> None:
    """Send a non-durable event to every socket of these users, on whichever node."""
    targets = list(dict.fromkeys(user_ids))
    if not targets:
        return
    message = bus.Ephemeral(user_ids=targets, payload=JSON.encode(event))
    await _publish(broker, bus.encode(message), "ephemeral")


async def _publish(broker: Broker, payload: bytes, what: str) -> None:
    try:
        await broker.publish(payload)
    except BrokerUnavailable as exc:
        log.error("%s not published: broker unavailable", what, extra={"error": str(exc)})
