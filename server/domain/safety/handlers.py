"""users.block, users.unblock, users.blocked, reports.create → ``SafetyService``."""

from __future__ import annotations

from protocol.base import Empty
from protocol.safety import (
    BlockedResult,
    ReportResult,
    ReportsCreate,
    UsersBlock,
    UsersBlocked,
    UsersUnblock,
)
from server.commands import AreaHandlers, Caller
from server.domain.matching import matched
from server.domain.safety.service import SafetyService


async def block(safety: SafetyService, caller: Caller, cmd: UsersBlock) -> Empty:
    try:
        return await safety.block(caller.user_id, cmd.user_id)
    finally:  # matches may have ended: this socket's next presence.query must know
        matched.forget(caller.memo)


async def unblock(safety: SafetyService, caller: Caller, cmd: UsersUnblock) -> Empty:
    return await safety.unblock(caller.user_id, cmd.user_id)


async def blocked(safety: SafetyService, caller: Caller, cmd: UsersBlocked) -> BlockedResult:
    return await safety.blocked(caller.user_id, cmd.cursor, cmd.limit)


async def report(safety: SafetyService, caller: Caller, cmd: ReportsCreate) -> ReportResult:
    return await safety.report(caller.user_id, cmd)


HANDLERS: AreaHandlers = {
    UsersBlock: block,
    UsersUnblock: unblock,
    UsersBlocked: blocked,
    ReportsCreate: report,
}
