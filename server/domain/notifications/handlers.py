"""notifications.list, notifications.read, devices.register."""

from __future__ import annotations

from protocol.notifications import (
    DeviceResult,
    DevicesRegister,
    NotificationsList,
    NotificationsRead,
    NotificationsResult,
    UnreadCountResult,
)
from server.domain.notifications import service
from server.gateway.dispatch import CommandContext, CommandRegistry
from server.state import DB


async def list_notifications(ctx: CommandContext, cmd: NotificationsList) -> NotificationsResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.list_notifications(
            conn, ctx.user_id, cursor=cmd.cursor, unread_only=cmd.unread_only, limit=cmd.limit)


async def read_notifications(ctx: CommandContext, cmd: NotificationsRead) -> UnreadCountResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.mark_read(conn, ctx.user_id, None if cmd.all else cmd.ids)


async def register_device(ctx: CommandContext, cmd: DevicesRegister) -> DeviceResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.register_device(conn, ctx.user_id, cmd.platform, cmd.token)


def register(registry: CommandRegistry) -> None:
    registry.add(NotificationsList, list_notifications)
    registry.add(NotificationsRead, read_notifications)
    registry.add(DevicesRegister, register_device)
