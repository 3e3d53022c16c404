"""The first admin: ``python -m server create-admin EMAIL`` makes an existing account an
admin, with an audit entry whose actor is null (the command line).

It needs no running server. Its sockets are not closed (no broker here): admin commands
re-read the stored role (the guard), so the new admin can use them at once; other checks
see the new role from their next connection.
"""

from __future__ import annotations

import asyncpg

from server.domain.admin import audit, store


class BootstrapError(RuntimeError):
    """``str(exc)`` is the one line to show."""


async def create_admin(pool: asyncpg.Pool, email: str) -> str:
    """Make the account with ``email`` an admin; the line to print."""
    address = email.strip()
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await store.select_user_by_email(conn, address)
            if row is None:
                raise BootstrapError(f"no account with email {address!r}: register it first, "
                                     "then run create-admin again")
            if row["role"] == "admin":
                return f"{row['email']} is already an admin (user {row['id']})"
            await store.update_user_role(conn, row["id"], "admin")
            await audit.record(conn, actor_id=None, action="cli.create_admin",
                               target_kind="user", target_id=row["id"],
                               data={"role": "admin", "previous": row["role"]})
    except asyncpg.UndefinedTableError:
        raise BootstrapError("the database has no schema yet: run `python -m server migrate` "
                             "(or start the server once) first") from None
    return f"{row['email']} is now an admin (user {row['id']})"
