"""In-app notifications, push devices and push preferences (PROTOCOL §8, §10.6)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol.base import Command, DurableEvent, Empty, Result
from protocol.objects import Device, Notification, Platform
from protocol.types import Cursor, Id, IdempotencyKey, PageLimit50, PageLimit100, Token

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


NotificationKind = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
"""A notification ``kind`` such as ``chat.message`` (an open set)."""

PushKey = Annotated[str, Meta(min_length=1, max_length=200)]


class PushSubscriptionKeys(msgspec.Struct, kw_only=True):
    """The keys of a browser's ``PushSubscription`` (URL-safe base64)."""

    p256dh: PushKey
    """The subscription's P-256 public key (65 bytes, uncompressed)."""
    auth: PushKey
    """The 16-byte authentication secret."""


class PushSubscription(msgspec.Struct, kw_only=True):
    """A browser's ``PushSubscription.toJSON()`` (``expirationTime`` is ignored)."""

    endpoint: Annotated[str, Meta(min_length=1, max_length=2048)]
    keys: PushSubscriptionKeys


class DevicesResult(Result, kw_only=True):
    devices: list[Device]
    """Oldest registration first."""
    next_cursor: Cursor | None = None


class PushConfigResult(Result, kw_only=True):
    webpush_public_key: str | None = None
    """The VAPID public key (URL-safe base64) for ``applicationServerKey``; absent when
    Web Push is not set up on this server."""


class NotificationPreferences(msgspec.Struct, kw_only=True):
    """What the user has pushed: ``muted_kinds`` still reach the inbox and the socket,
    never a push; ``push: false`` stops every push."""

    muted_kinds: list[NotificationKind]
    push: bool


class NotificationPreferencesResult(Result, kw_only=True):
    preferences: NotificationPreferences


class DevicesRegister(Command, tag="devices.register", kw_only=True):
    """Register (or refresh) a push device: ``token`` for ``fcm`` and ``apns``,
    ``subscription`` for ``webpush``. Registering the same token (or endpoint) again
    returns the same device; it moves to the newest user who registers it."""

    platform: Platform
    token: Token | None = None
    subscription: PushSubscription | None = None
    idempotency_key: IdempotencyKey | None = None
    result_type = DeviceResult

    def __post_init__(self) -> None:
        if self.platform is Platform.WEBPUSH:
            if self.subscription is None:
                raise ValueError("subscription: required for webpush")
            if self.token is not None:
                raise ValueError("token: webpush takes subscription, not token")
        else:
            if self.token is None:
                raise ValueError(f"token: required for {self.platform.value}")
            if self.subscription is not None:
                raise ValueError(f"subscription: only for webpush, not {self.platform.value}")


class DevicesUnregister(Command, tag="devices.unregister", kw_only=True):
    """Remove one of the user's devices (another user's is ``not_found``)."""

    device_id: Id
    result_type = Empty


class DevicesList(Command, tag="devices.list", kw_only=True):
    """The user's registered devices, oldest first."""

    cursor: Cursor | None = None
    limit: PageLimit50 = 50
    result_type = DevicesResult


class PushConfig(Command, tag="push.config", kw_only=True):
    """What a client needs to subscribe to Web Push."""

    result_type = PushConfigResult


class NotificationsPreferences(Command, tag="notifications.preferences", kw_only=True):
    """Read or change what is pushed; an absent field is unchanged (so ``{}`` reads)."""

    muted_kinds: Annotated[list[NotificationKind], Meta(max_length=50)] | UnsetType = UNSET
    """Replaces the whole list."""
    push: bool | UnsetType = UNSET
    result_type = NotificationPreferencesResult


class NotificationEvent(DurableEvent, tag="notification", kw_only=True):
    """To the notified user: a new notification."""

    notification: Notification
