"""presence.query → ``PresenceService``."""

from __future__ import annotations

from protocol.presence import PresenceQuery, PresenceResult
from server.commands import AreaHandlers, Caller
from server.domain.presence.service import PresenceService


async def query(presence: PresenceService, caller: Caller, cmd: PresenceQuery
                ) -> PresenceResult:
    return await presence.query(caller.user_id, cmd.user_ids, caller.memo)


HANDLERS: AreaHandlers = {PresenceQuery: query}
