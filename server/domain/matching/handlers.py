"""preferences.update, discovery.candidates, swipe, matches.list, matches.unmatch."""

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
from server.domain.matching import service
from server.gateway.dispatch import CommandContext, CommandRegistry
from server.state import DB, EVENT_STREAM, PRESENCE


async def update_preferences(ctx: CommandContext, cmd: PreferencesUpdate) -> PreferencesResult:
    return await service.update_preferences(ctx.app[EVENT_STREAM], ctx.user_id, cmd)


async def candidates(ctx: CommandContext, cmd: DiscoveryCandidates) -> CandidatesResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.candidates(conn, ctx.user_id, cmd.pet_id, cmd.limit, cmd.cursor)


async def swipe(ctx: CommandContext, cmd: Swipe) -> SwipeResult:
    return await service.record_swipe(ctx.app[EVENT_STREAM], ctx.app[PRESENCE], ctx.user_id, cmd)


async def matches(ctx: CommandContext, cmd: MatchesList) -> MatchesResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.list_matches(conn, ctx.user_id, cmd.cursor, cmd.limit)


async def unmatch(ctx: CommandContext, cmd: MatchesUnmatch) -> Empty:
    return await service.unmatch(ctx.app[EVENT_STREAM], ctx.user_id, cmd.match_id)


def register(registry: CommandRegistry) -> None:
    registry.add(PreferencesUpdate, update_preferences)
    registry.add(DiscoveryCandidates, candidates)
    registry.add(Swipe, swipe)
    registry.add(MatchesList, matches)
    registry.add(MatchesUnmatch, unmatch)
