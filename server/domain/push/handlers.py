"""devices.register, devices.unregister, devices.list, push.config,
notifications.preferences → ``PushService``."""

from __future__ import annotations

from protocol.base import Empty
from protocol.notifications import (
    DeviceResult,
    DevicesList,
    DevicesRegister,
    DevicesResult,
    DevicesUnregister,
    NotificationPreferencesResult,
    NotificationsPreferences,
    PushConfig,
    PushConfigResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.push.service import PushService


async def register_device(push: PushService, caller: Caller, cmd: DevicesRegister
                          ) -> DeviceResult:
    return await push.register_device(caller.user_id, cmd)


async def unregister_device(push: PushService, caller: Caller, cmd: DevicesUnregister
                            ) -> Empty:
    return await push.unregister_device(caller.user_id, cmd.device_id)


async def list_devices(push: PushService, caller: Caller, cmd: DevicesList) -> DevicesResult:
    return await push.list_devices(caller.user_id, cmd.cursor, cmd.limit)


async def push_config(push: PushService, caller: Caller, cmd: PushConfig) -> PushConfigResult:
    return push.push_config()


async def preferences(push: PushService, caller: Caller, cmd: NotificationsPreferences
                      ) -> NotificationPreferencesResult:
    return await push.preferences(caller.user_id, cmd.muted_kinds, cmd.push)


HANDLERS: AreaHandlers = {
    DevicesRegister: register_device,
    DevicesUnregister: unregister_device,
    DevicesList: list_devices,
    PushConfig: push_config,
    NotificationsPreferences: preferences,
}
