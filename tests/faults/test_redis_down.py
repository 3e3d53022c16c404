"""Issue 17.2: with Redis killed, every command that does not need Redis still works.

Presence read inside a change (chat.send, a match's notification) degrades to "unknown"
(treated as offline: the notification's push is queued) instead of failing the change;
commands that do need Redis (presence.query) answer ``unavailable``, never ``internal``;
events still arrive (through each node's position check), and nothing is logged per
command.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis.asyncio as aioredis

from protocol.base import Command
from protocol.chat import (
    ChatConversations,
    ChatEdit,
    ChatHistory,
    ChatReadCommand,
    ChatSend,
    ChatTypingCommand,
)
from protocol.lost import LostNearby, LostReport, LostWatch, LostWatches
from protocol.matching import (
    DiscoveryCandidates,
    MatchesList,
    PreferencesUpdate,
    Swipe,
    SwipeDirection,
)
from protocol.notifications import DevicesRegister, NotificationsList, NotificationsRead
from protocol.objects import Platform, Species
from protocol.pets import PetsCreate, PetsMine, PetsUpdate
from protocol.presence import PresenceQuery
from protocol.session import Ack, AuthRefresh, Error
from protocol.types import Location
from server.realtime.presence import RedisPresence
from server.state import RUNTIME
from tests.domain.conftest import AppClient, cid, make_match, new_user, wait_online
from tests.faults.helpers import records, server_errors
from tests.support.services import RedisProcess
from tests.support.waiting import until

HERE = Location(lat=52.52, lng=13.405)


async def push_rows(client: Any, user_id: str) -> int:
    count: int = await client.app[RUNTIME].deps.db.fetchval(
        "SELECT count(*) FROM push_outbox WHERE user_id = $1", user_id)
    return count


async def test_chat_send_and_a_match_work_with_redis_killed(
    app_client: AppClient, private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client(redis_url=private_redis.url, event_position_check_s=0.2)
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    rex, bella = await alice.pet("Rex"), await bob.pet("Bella")
    match = await make_match(alice, rex, bob, bella)
    await bob.sock.close()
    await wait_online(client, bob.id, False)
    assert (await alice.sock.expect("presence")).online is False
    pushes_before = await push_rows(client, bob.id)

    private_redis.stop()
    caplog.set_level(logging.INFO, logger="server")
    sent = await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                    client_msg_id=cid(), body="still there?"))
    # The sender's own event arrives (the broker is down: the position check finds it).
    event = await alice.sock.expect("chat.message", timeout=5)
    assert event.message.id == sent.message.id
    # Bob's presence is unknown: he gets the notification and a queued push.
    assert await push_rows(client, bob.id) == pushes_before + 1

    # A match made while Redis is down: both owners hear of it (match + notification).
    carol = await new_user(client, "Carol")
    luna = await carol.pet("Luna")
    await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=luna.id,
                          direction=SwipeDirection.LIKE))
    second = await carol.cmd(Swipe(id=cid(), pet_id=luna.id, target_pet_id=rex.id,
                                   direction=SwipeDirection.LIKE))
    assert second.match is not None
    for user in (alice, carol):
        assert (await user.sock.expect("match.created", timeout=5)).match == second.match
        assert (await user.sock.expect("notification", timeout=5)).seq > 0

    # A socket opened while Redis is down gets live chat too.
    back = await bob.connect()
    await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                             client_msg_id=cid(), body="hello again"))
    assert (await alice.sock.expect("chat.message", timeout=5)).message.body == "hello again"
    assert (await back.expect("chat.message", timeout=5)).message.body == "hello again"
    assert server_errors(caplog) == []


async def test_commands_that_do_not_need_redis_answer_while_it_is_down(
    app_client: AppClient, private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client(redis_url=private_redis.url, event_position_check_s=0.2,
                              heartbeat_s=1.0)
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    rex = await alice.pet("Rex")
    match = await make_match(alice, rex, bob, await bob.pet("Bella"))
    first = await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                     client_msg_id=cid(), body="one"))
    await alice.sock.expect("chat.message")
    await bob.sock.expect("chat.message")
    carol = await new_user(client, "Carol")  # matched with Alice, then no socket anywhere
    await make_match(alice, rex, carol, await carol.pet("Luna"))
    await carol.sock.close()
    await wait_online(client, carol.id, False)

    private_redis.stop()
    caplog.set_level(logging.INFO, logger="server")
    commands: list[Command] = [
        PetsMine(id=cid()),
        PetsCreate(id=cid(), name="Milo", species=Species.CAT, location=HERE),
        PetsUpdate(id=cid(), pet_id=rex.id, bio="good dog"),
        PreferencesUpdate(id=cid(), max_distance_km=50),
        DiscoveryCandidates(id=cid(), pet_id=rex.id),
        MatchesList(id=cid()),
        ChatConversations(id=cid()),
        ChatHistory(id=cid(), conversation_id=match.conversation_id),
        ChatEdit(id=cid(), message_id=first.message.id, body="one, edited"),
        ChatTypingCommand(id=cid(), conversation_id=match.conversation_id),
        NotificationsList(id=cid()),
        NotificationsRead(id=cid(), all=True),
        DevicesRegister(id=cid(), platform=Platform.FCM, token="t" * 40),
        LostWatch(id=cid(), location=HERE, radius_m=1000),
        LostWatches(id=cid()),
        LostReport(id=cid(), description="brown dog, red collar", location=HERE,
                   radius_m=500),
        LostNearby(id=cid(), location=HERE, radius_m=5000),
        AuthRefresh(id=cid(), token=alice.reg.access_token),
    ]
    for command in commands:
        reply = await alice.sock.request(command)
        assert not isinstance(reply, Error), (command.wire_type(), reply)
    await bob.sock.send(Ack(seq=1))
    read = await bob.sock.request(ChatReadCommand(
        id=cid(), conversation_id=match.conversation_id, message_id=first.message.id))
    assert not isinstance(read, Error), read

    # Presence of a user on no socket of this node needs Redis: unavailable with a retry
    # hint, not internal. One with a socket here is answered from the node's hub.
    reply = await alice.sock.request(PresenceQuery(id=cid(), user_ids=[carol.id]))
    assert isinstance(reply, Error) and reply.code == "unavailable", reply
    here = await alice.cmd(PresenceQuery(id=cid(), user_ids=[bob.id]))
    assert [p.online for p in here.presence] == [True]
    assert reply.retry_after_s is not None and reply.retry_after_s > 0
    assert server_errors(caplog) == []
    # One line for the outage, however many calls failed.
    assert len(records(caplog, "redis unavailable")) == 1

    private_redis.start()
    outages = client.app[RUNTIME].deps.outages
    await until(lambda: not outages.is_down("redis"), timeout=10, what="redis to be back")
    assert len(records(caplog, "redis available again")) == 1

    # The sweeper re-adds her socket to presence in Redis (what other nodes read).
    redis = aioredis.from_url(private_redis.url)
    try:
        elsewhere = RedisPresence(redis, client.app[RUNTIME].deps.settings.redis_prefix, 60)

        async def alice_online() -> bool:
            return (await elsewhere.online([alice.id]))[alice.id]

        await until(alice_online, timeout=10, interval=0.1, what="alice to be online again")
    finally:
        await redis.aclose()


async def test_a_user_with_no_socket_gets_the_push_when_presence_is_down(
    app_client: AppClient, private_redis: RedisProcess
) -> None:
    """The degraded lookup never counts an unknown user as online (no push lost)."""
    client = await app_client(redis_url=private_redis.url, event_position_check_s=0.2)
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet("Rex"), bob, await bob.pet("Bella"))
    await bob.sock.close()
    await wait_online(client, bob.id, False)
    before = await push_rows(client, bob.id)
    private_redis.stop()
    for i in range(3):
        await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                 client_msg_id=cid(), body=f"m{i}"))
    assert await push_rows(client, bob.id) == before + 3


