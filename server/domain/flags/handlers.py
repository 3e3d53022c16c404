"""flags.get (any user) and admin.flags.set / admin.flags.list (admins) → ``FlagService``.

``ADMIN_HANDLERS`` is bound with the admin guard in the composition root, like every other
``admin.*`` command; ``HANDLERS`` is open to every user.
"""

from __future__ import annotations

from protocol.flags import (
    AdminFlagsList,
    AdminFlagsSet,
    FlagResult,
    FlagsGet,
    FlagsResult,
    FlagValuesResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.flags.service import FlagService


async def get(flags: FlagService, caller: Caller, cmd: FlagsGet) -> FlagValuesResult:
    return flags.get(caller.user_id)


async def set_flag(flags: FlagService, caller: Caller, cmd: AdminFlagsSet) -> FlagResult:
    return await flags.set_flag(caller.user_id, cmd.key, cmd.enabled, cmd.rollout_percent)


async def list_flags(flags: FlagService, caller: Caller, cmd: AdminFlagsList) -> FlagsResult:
    return await flags.list_flags()


HANDLERS: AreaHandlers = {FlagsGet: get}
ADMIN_HANDLERS: AreaHandlers = {AdminFlagsSet: set_flag, AdminFlagsList: list_flags}
"""Bind with ``guard=require_admin(...)``."""
