"""Issue 17.6: the caller's connection gets the ``ok`` and *then* the events its own command
appended (PROTOCOL §3), whichever path brings them: the broker (Redis, racing the reply),
the position check, or catch-up from PostgreSQL.
"""

from __future__ import annotations

import asyncio

from protocol.base import Empty
from protocol.chat import ChatSend
from protocol.pets import PetsMine
from protocol.session import Ok
from server.commands import Caller
from server.realtime.stream import EventStream, Transaction
from server.state import RUNTIME
from tests.domain.conftest import AppClient, cid, make_match, new_user
from tests.support import events
from tests.support.auth import register
from tests.support.ws import open_session


async def test_chat_send_reply_comes_before_the_senders_own_event(
    app_client: AppClient,
) -> None:
    client = await app_client()  # the Redis broker: the event's notice races the reply
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet("Rex"), bob, await bob.pet("Bella"))
    for i in range(40):
        reply = await alice.sock.request(ChatSend(
            id=cid(), conversation_id=match.conversation_id, client_msg_id=cid(),
            body=f"m{i}"))
        assert isinstance(reply, Ok), reply
        assert alice.sock.pending == [], f"round {i}: event before its ok"
        await alice.sock.expect("chat.message")
        await bob.sock.expect("chat.message")


async def test_any_command_that_appends_to_its_caller_replies_first(
    app_client: AppClient,
) -> None:
    """A handler that appends to its caller and is still busy after the commit: live
    notice, position check and a concurrent writer all have time to deliver first."""
    holder: dict[str, EventStream] = {}

    async def handler(caller: Caller, command: PetsMine) -> Empty:
        stream = holder["stream"]
        async with stream.transaction() as tx:
            await tx.append([caller.user_id], events.notification("mine"))
        if command.id.startswith("silent"):
            # Committed without a notice (a dropped one): the position check finds it.
            async with stream.pool.acquire() as conn, conn.transaction():
                await Transaction(conn).append([caller.user_id],
                                               events.notification("silent"))
        await asyncio.sleep(0.3)  # still working after its commits
        return Empty()

    client = await app_client(event_position_check_s=0.05, handlers={PetsMine: handler})
    holder["stream"] = client.app[RUNTIME].deps.stream
    user = await register(client)
    sock = await open_session(client, user.access_token)
    laptop = await open_session(client, user.access_token)
    seq = 0
    for command_id in ("live", "silent-1", "live-2"):
        reply = await sock.request(PetsMine(id=command_id), timeout=5)
        assert isinstance(reply, Ok)
        assert sock.pending == [], f"{command_id}: event before its ok: {sock.pending}"
        count = 2 if command_id.startswith("silent") else 1
        for _ in range(count):
            seq += 1
            assert (await sock.expect("notification")).seq == seq
    # The user's other device gets every event, in order, once.
    assert [(await laptop.expect("notification")).seq for _ in range(seq)] == list(
        range(1, seq + 1))
    await sock.expect_nothing(0.1)
