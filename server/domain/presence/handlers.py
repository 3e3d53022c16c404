"""presence.query."""

from __future__ import annotations

from protocol.presence import PresenceQuery, PresenceResult
from server.domain.presence import service
from server.gateway.dispatch import CommandContext, CommandRegistry
from server.state import DB, PRESENCE


async def query(ctx: CommandContext, cmd: PresenceQuery) -> PresenceResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.query(conn, ctx.app[PRESENCE], ctx.user_id, cmd.user_ids)


def register(registry: CommandRegistry) -> None:
    registry.add(PresenceQuery, query)
