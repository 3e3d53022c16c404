"""The one admin check: ``require_admin(db)`` is the guard the composition root binds every
``admin.*`` handler with (``CommandTable.bind(..., guard=...)``).

It runs before the handler, so before any id in the command is looked up: a non-admin
learns nothing about which ids exist (PROTOCOL §10.4: ``forbidden`` whatever the ids).

It reads the caller's role from the database on every admin command instead of trusting
the role the socket was opened with: a demoted (or banned) admin's open socket loses its
admin commands at once, on every node, with no message between nodes. It is one
primary-key lookup, on commands that are rare.
"""

from __future__ import annotations

import logging

import asyncpg

from protocol.base import Command
from server.commands import Caller, Guard
from server.errors import Forbidden

log = logging.getLogger(__name__)


def require_admin(db: asyncpg.Pool) -> Guard:
    """A guard that lets a command through only for a current, unbanned admin."""

    async def admin_only(caller: Caller, command: Command) -> None:
        role = await db.fetchval(
            "SELECT role FROM users WHERE id = $1 AND banned_at IS NULL", caller.user_id
        )
        if role != "admin":
            log.warning("admin command refused", extra={
                "user_id": caller.user_id, "command": command.wire_type(),
                "socket_role": caller.principal.role, "stored_role": role})
            raise Forbidden(f"{command.wire_type()}: needs the admin role")

    return admin_only
