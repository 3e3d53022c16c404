"""Presence between matched users: ``presence.query`` and the ``presence`` ephemeral event.

Only users with a live match see each other's presence. Asking about anyone
else answers ``online: false`` (not ``not_found``): the answer then looks the
same whether the user exists, is offline, or is simply not matched, so presence
leaks nothing; a client may ask about its own id and gets the truth.
"""

from __future__ import annotations

from protocol.objects import PresenceState
from protocol.presence import PresenceEvent, PresenceResult
from server.deps import Deps
from server.domain.matching import store as matching_store
from server.domain.matching.matched import matched_user_ids
from server.realtime.memo import Memo


class PresenceService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.presence = deps.presence
        self.node = deps.node

    async def query(self, user_id: str, user_ids: list[str], memo: Memo) -> PresenceResult:
        """One Redis call; the matched set comes from the connection's memo (a query
        only on the first call, and after an event that changed it)."""
        matched = await matched_user_ids(self.db, memo, user_id)
        asked = [u for u in dict.fromkeys(user_ids) if u in matched or u == user_id]
        online = await self.presence.online(asked) if asked else {}
        return PresenceResult(presence=[PresenceState(user_id=u, online=online.get(u, False))
                                        for u in user_ids])

    async def announce(self, user_id: str, online: bool) -> None:
        """The gateway's presence listener: tell the user's matched users that they came
        online (first socket anywhere) or went offline (last socket gone)."""
        others = await matching_store.select_matched_user_ids(self.db, user_id)
        if others:
            await self.node.send_ephemeral(others, PresenceEvent(user_id=user_id, online=online))
