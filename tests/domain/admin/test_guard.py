"""Every admin command is refused ``forbidden`` for anyone but an admin, before any lookup,
by the one guard the composition root binds them with."""

from __future__ import annotations

import msgspec
import pytest

from protocol.admin import AdminBan, AdminUsers, AdminUsersResult
from protocol.base import Command
from protocol.flags import FlagsGet
from protocol.messages import COMMANDS
from server.commands import Caller
from server.state import RUNTIME
from tests.domain.admin.conftest import audit_rows, make_admin, new_admin, pool_of
from tests.domain.conftest import AppClient, cid, new_user
from tests.protocol.samples import CLIENT_SAMPLES

ADMIN_SAMPLES = [s for s in CLIENT_SAMPLES
                 if isinstance(s, Command) and s.wire_type().startswith("admin.")]
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_the_samples_cover_every_admin_command() -> None:
    assert {type(s) for s in ADMIN_SAMPLES} == {
        cls for tag, cls in COMMANDS.items() if tag.startswith("admin.")}


async def test_every_admin_command_is_bound_behind_the_guard(app_client: AppClient) -> None:
    commands = (await app_client()).server.app[RUNTIME].commands
    admin_types = [cls for tag, cls in COMMANDS.items() if tag.startswith("admin.")]
    guards = {commands.guard_of(cls) for cls in admin_types}
    assert None not in guards and len(guards) == 1, "one guard for every admin.* command"
    assert commands.guard_of(FlagsGet) is None  # any user


@pytest.mark.parametrize("sample", ADMIN_SAMPLES, ids=lambda s: s.wire_type())
async def test_non_admins_are_forbidden_whatever_the_ids(app_client: AppClient,
                                                         sample: Command) -> None:
    client = await app_client()
    user, other = await new_user(client), await new_user(client)
    # Ids that exist and ids that do not get the very same answer: nothing is looked up.
    answers = set()
    for target in (other.id, UNKNOWN, "not-an-id"):
        fields = {f: target for f in ("user_id", "item_id", "actor_id", "target_id")
                  if hasattr(sample, f)}
        command = msgspec.structs.replace(sample, id=cid(), **fields)
        error = await user.error(command)
        assert error.code == "forbidden", error
        answers.add(error.message)
    assert answers == {f"{sample.wire_type()}: needs the admin role"}
    assert await audit_rows(client) == []
    banned = await pool_of(client).fetchval("SELECT banned_at FROM users WHERE id = $1",
                                            other.id)
    assert banned is None


async def test_the_stored_role_counts_not_the_one_the_socket_opened_with(
        app_client: AppClient) -> None:
    client = await app_client()
    user = await new_user(client)
    assert (await user.error(AdminUsers(id=cid()))).code == "forbidden"
    await make_admin(client, user)  # the command line: no socket is closed
    result = await user.cmd(AdminUsers(id=cid()))
    assert isinstance(result, AdminUsersResult) and result.users
    # Demoted behind the socket's back (another node, psql): refused at the next command.
    await pool_of(client).execute("UPDATE users SET role = 'user' WHERE id = $1", user.id)
    assert (await user.error(AdminUsers(id=cid()))).code == "forbidden"


async def test_a_banned_admin_loses_admin_commands(app_client: AppClient) -> None:
    client = await app_client()
    admin = await new_admin(client)
    await pool_of(client).execute("UPDATE users SET banned_at = now() WHERE id = $1", admin.id)
    assert (await admin.error(AdminUsers(id=cid()))).code == "forbidden"


async def test_a_replaced_admin_handler_keeps_the_guard(app_client: AppClient) -> None:
    async def leaky(caller: Caller, cmd: AdminUsers) -> AdminUsersResult:
        return AdminUsersResult(users=[])

    client = await app_client(handlers={AdminUsers: leaky})
    user = await new_user(client)
    assert (await user.error(AdminUsers(id=cid()))).code == "forbidden"
    await make_admin(client, user)
    assert (await user.cmd(AdminUsers(id=cid()))).users == []


async def test_decode_errors_come_before_the_role(app_client: AppClient) -> None:
    """A frame that fails validation is bad_request for anyone (it says nothing about any
    stored thing); a valid one from a non-admin is forbidden."""
    client = await app_client()
    user = await new_user(client)
    await user.sock.send_raw('{"type": "admin.ban", "id": "x1", "user_id": "u"}')
    reply = await user.sock.receive()
    assert reply.wire_type() == "error" and getattr(reply, "code", None) == "bad_request"
    assert "reason" in getattr(reply, "message", "")
    assert (await user.error(AdminBan(id=cid(), user_id=user.id, reason="x"))).code == \
        "forbidden"
