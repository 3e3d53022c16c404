"""admin.users, admin.ban, admin.unban, admin.set_role, admin.moderation.queue,
admin.moderation.decide, admin.analytics, admin.audit → ``AdminService``.

No handler checks the role: ``HANDLERS`` is bound with the admin guard in the composition
root (``server.app``), which refuses everyone else with ``forbidden`` first.
"""

from __future__ import annotations

from protocol.admin import (
    AdminAnalytics,
    AdminAudit,
    AdminBan,
    AdminModerationDecide,
    AdminModerationQueue,
    AdminSetRole,
    AdminUnban,
    AdminUserResult,
    AdminUsers,
    AdminUsersResult,
    AnalyticsResult,
    AuditResult,
    ModerationItemResult,
    ModerationQueueResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.admin.service import AdminService


async def users(admin: AdminService, caller: Caller, cmd: AdminUsers) -> AdminUsersResult:
    return await admin.users(query=cmd.query, role=cmd.role.value if cmd.role else None,
                             banned=cmd.banned, cursor=cmd.cursor, limit=cmd.limit)


async def ban(admin: AdminService, caller: Caller, cmd: AdminBan) -> AdminUserResult:
    return AdminUserResult(user=await admin.ban(caller.user_id, cmd.user_id, cmd.reason))


async def unban(admin: AdminService, caller: Caller, cmd: AdminUnban) -> AdminUserResult:
    return AdminUserResult(user=await admin.unban(caller.user_id, cmd.user_id))


async def set_role(admin: AdminService, caller: Caller, cmd: AdminSetRole) -> AdminUserResult:
    return AdminUserResult(user=await admin.set_role(caller.user_id, cmd.user_id,
                                                     cmd.role.value))


async def queue(admin: AdminService, caller: Caller, cmd: AdminModerationQueue
                ) -> ModerationQueueResult:
    return await admin.queue(kind=cmd.kind.value if cmd.kind else None,
                             status=cmd.status.value, cursor=cmd.cursor, limit=cmd.limit)


async def decide(admin: AdminService, caller: Caller, cmd: AdminModerationDecide
                 ) -> ModerationItemResult:
    item = await admin.decide(caller.user_id, cmd.item_id, cmd.decision.value, cmd.reason)
    return ModerationItemResult(item=item)


async def analytics(admin: AdminService, caller: Caller, cmd: AdminAnalytics
                    ) -> AnalyticsResult:
    return await admin.analytics(cmd.from_, cmd.to)


async def audit(admin: AdminService, caller: Caller, cmd: AdminAudit) -> AuditResult:
    return await admin.audit(actor_id=cmd.actor_id, action=cmd.action,
                             target_id=cmd.target_id, cursor=cmd.cursor, limit=cmd.limit)


HANDLERS: AreaHandlers = {
    AdminUsers: users,
    AdminBan: ban,
    AdminUnban: unban,
    AdminSetRole: set_role,
    AdminModerationQueue: queue,
    AdminModerationDecide: decide,
    AdminAnalytics: analytics,
    AdminAudit: audit,
}
"""Bind with ``guard=require_admin(...)``."""
