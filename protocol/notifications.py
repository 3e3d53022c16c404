"""In-app notifications and push devices."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from protocol.base import Command, DurableEvent, Result
from protocol.objects import Device, Notification, Platform
from protocol.types import Cursor, Id, PageLimit100, Token

UnreadCount = Annotated[int, Meta(ge=0)]


class NotificationsResult(Result, kw_only=True):
    notifications: list[Notification]
    """Newest first."""
    next_cursor: Cursor | None = None
    unread_count: UnreadCount


class UnreadCountResult(Result, kw_only=True):
    unread_count: UnreadCount


class DeviceResult(Result, kw_only=True):
    device: Device


class NotificationsList(Command, tag="notifications.list", kw_only=True):
    """The user's notifications, newest first; only unread ones with ``unread_only``."""

    cursor: Cursor | None = None
    unread_only: bool = False
    limit: PageLimit100 = 50
    result_type = NotificationsResult


class NotificationsRead(Command, tag="notifications.read", kw_only=True):
    """Mark notifications read: the given ``ids`` (unknown ids are skipped), or
    ``all: true``. Exactly one of the two. Returns the new unread count."""

    ids: Annotated[list[Id], Meta(max_length=500)] | None = None
    all: bool = False
    result_type = UnreadCountResult

    def __post_init__(self) -> None:
        if (self.ids is None) == (not self.all):
            raise ValueError("ids: give either ids or all: true")


class DevicesRegister(Command, tag="devices.register", kw_only=True):
    """Register (or refresh) a push token for the user. Registering the same token
    again returns the same device; a token moves to the newest user who registers it."""

    platform: Platform
    token: Token
    result_type = DeviceResult


class NotificationEvent(DurableEvent, tag="notification", kw_only=True):
    """To the notified user: a new notification."""

    notification: Notification
