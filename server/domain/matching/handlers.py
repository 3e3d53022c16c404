"""preferences.update, discovery.candidates, swipe, matches.list, matches.unmatch
→ ``MatchingService``."""

from __future__ import annotations

from protocol.base import Empty
from protocol.matching import (
    CandidatesResult,
    DiscoveryCandidates,
    MatchesList,
    MatchesResult,
    MatchesUnmatch,
    PreferencesResult,
    PreferencesUpdate,
    Swipe,
    SwipeResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.matching import matched
from server.domain.matching.service import MatchingService


async def update_preferences(matching: MatchingService, caller: Caller,
                             cmd: PreferencesUpdate) -> PreferencesResult:
    return await matching.update_preferences(caller.user_id, cmd)


async def candidates(matching: MatchingService, caller: Caller, cmd: DiscoveryCandidates
                     ) -> CandidatesResult:
    return await matching.candidates(caller.user_id, cmd.pet_id, cmd.limit, cmd.cursor)


async def swipe(matching: MatchingService, caller: Caller, cmd: Swipe) -> SwipeResult:
    result = await matching.record_swipe(caller.user_id, cmd)
    if result.match is not None:  # a new match: seen by this socket's next presence.query
        matched.forget(caller.memo)
    return result


async def matches(matching: MatchingService, caller: Caller, cmd: MatchesList
                  ) -> MatchesResult:
    return await matching.list_matches(caller.user_id, cmd.cursor, cmd.limit)


async def unmatch(matching: MatchingService, caller: Caller, cmd: MatchesUnmatch) -> Empty:
    try:
        return await matching.unmatch(caller.user_id, cmd.match_id)
    finally:  # this socket's next presence.query must not see the match
        matched.forget(caller.memo)


HANDLERS: AreaHandlers = {
    PreferencesUpdate: update_preferences,
    DiscoveryCandidates: candidates,
    Swipe: swipe,
    MatchesList: matches,
    MatchesUnmatch: unmatch,
}
