"""notifications.list, notifications.read → ``NotificationService``."""

from __future__ import annotations

from protocol.notifications import (
    NotificationsList,
    NotificationsRead,
    NotificationsResult,
    UnreadCountResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.notifications.service import NotificationService


async def list_notifications(inbox: NotificationService, caller: Caller,
                             cmd: NotificationsList) -> NotificationsResult:
    return await inbox.list_notifications(caller.user_id, cursor=cmd.cursor,
                                          unread_only=cmd.unread_only, limit=cmd.limit)


async def read_notifications(inbox: NotificationService, caller: Caller,
                             cmd: NotificationsRead) -> UnreadCountResult:
    return await inbox.mark_read(caller.user_id, None if cmd.all else cmd.ids)


HANDLERS: AreaHandlers = {
    NotificationsList: list_notifications,
    NotificationsRead: read_notifications,
}
