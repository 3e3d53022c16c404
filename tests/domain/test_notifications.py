"""The inbox and push outbox; notifications that reach an offline user on resume."""

from __future__ import annotations

import asyncpg

from protocol.chat import ChatSend
from protocol.matching import Swipe, SwipeDirection
from protocol.notifications import NotificationsList, NotificationsRead
from tests.domain.conftest import AppClient, User, cid, make_match, new_user, wait_online


async def go_offline(user: User) -> int:
    """Close every socket of the user; return the last seq they had seen."""
    probe = await user.connect()
    assert probe.welcome is not None
    seen = probe.welcome.last_seq
    await probe.close()
    await user.sock.close()
    await wait_online(user.client, user.id, False)
    return seen


async def outbox(database_url: str, user_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT notification_id::text AS notification_id, awaits_ack, event_seq "
            "FROM push_outbox WHERE user_id = $1 ORDER BY id", user_id)
    finally:
        await conn.close()


async def test_message_to_offline_user_notifies_queues_push_and_arrives_on_resume(
    app_client: AppClient, database_url: str,
) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    # Both were online at the match: their pushes wait for an ack (PUSH_DELAY_S).
    assert [r["awaits_ack"] for r in await outbox(database_url, alice.id)] == [True]
    assert [r["awaits_ack"] for r in await outbox(database_url, bob.id)] == [True]
    seen = await go_offline(bob)
    assert (await alice.sock.expect("presence")).online is False  # they are matched

    sent = (await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                     client_msg_id="k", body="are you there?"))).message
    await alice.sock.expect("chat.message")
    await alice.sock.expect_nothing(0.1)  # the sender gets no notification

    queued = (await outbox(database_url, bob.id))[1:]
    assert len(queued) == 1 and queued[0]["awaits_ack"] is False  # offline: due at once

    sock = await bob.connect(resume_from=seen)
    assert sock.welcome is not None and sock.welcome.resumed
    event = await sock.expect("chat.message")
    assert event.message == sent and event.seq == seen + 1
    note = await sock.expect("notification")
    assert note.seq == seen + 2
    assert note.notification.kind == "chat.message"
    assert note.notification.title == "New message from Alice"
    assert note.notification.body == "are you there?"
    assert note.notification.data == {"conversation_id": match.conversation_id,
                                      "message_id": sent.id, "sender_id": alice.id}
    assert note.notification.id == queued[0]["notification_id"]
    assert queued[0]["event_seq"] == note.seq
    await sock.expect_nothing(0.1)
    assert (await alice.sock.expect("presence")).online is True

    # now online: the next message notifies nobody and queues nothing
    await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                             client_msg_id="k2", body="ah, hi"))
    await sock.expect("chat.message")
    await sock.expect_nothing(0.2)
    assert len(await outbox(database_url, bob.id)) == 2


async def test_match_while_offline_reaches_user_on_resume(
    app_client: AppClient, database_url: str,
) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    rex, bella = await alice.pet("Rex"), await bob.pet("Bella")
    await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=bella.id,
                          direction=SwipeDirection.LIKE))
    seen = await go_offline(alice)
    result = await bob.cmd(Swipe(id=cid(), pet_id=bella.id, target_pet_id=rex.id,
                                 direction=SwipeDirection.LIKE))
    assert result.match is not None
    assert [r["awaits_ack"] for r in await outbox(database_url, alice.id)] == [False]
    assert [r["awaits_ack"] for r in await outbox(database_url, bob.id)] == [True]
    sock = await alice.connect(resume_from=seen)
    assert (await sock.expect("match.created")).match == result.match
    note = (await sock.expect("notification")).notification
    assert note.kind == "match.created" and note.data["match_id"] == result.match.id


async def test_list_read_and_unread_count(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    mine = await alice.pet()
    for i in range(3):  # three matches → three notifications for alice
        other = await new_user(client)
        await make_match(alice, mine, other, await other.pet(f"P{i}"))
    page1 = await alice.cmd(NotificationsList(id=cid(), limit=2))
    assert page1.unread_count == 3 and len(page1.notifications) == 2
    page2 = await alice.cmd(NotificationsList(id=cid(), limit=2, cursor=page1.next_cursor))
    assert len(page2.notifications) == 1 and page2.next_cursor is None
    everything = page1.notifications + page2.notifications
    assert [n.created_at for n in everything] == sorted(
        (n.created_at for n in everything), reverse=True)
    first = everything[0]
    read = await alice.cmd(NotificationsRead(id=cid(), ids=[first.id, "unknown-id"]))
    assert read.unread_count == 2
    unread = await alice.cmd(NotificationsList(id=cid(), unread_only=True))
    assert first.id not in [n.id for n in unread.notifications]
    assert len(unread.notifications) == 2
    listed = await alice.cmd(NotificationsList(id=cid()))
    assert listed.notifications[0].read_at is not None
    # another user's ids are skipped, not marked
    bob = await new_user(client)
    assert (await bob.cmd(NotificationsRead(id=cid(), ids=[everything[1].id]))).unread_count \
        == 0
    assert (await alice.cmd(NotificationsList(id=cid()))).unread_count == 2
    assert (await alice.cmd(NotificationsRead(id=cid(), all=True))).unread_count == 0
    error = await alice.error(NotificationsList(id=cid(), cursor="nope"))
    assert error.code == "bad_request"


async def test_an_offline_notification_carries_any_display_name_as_valid_json(
    app_client: AppClient, database_url: str,
) -> None:
    # The send statement puts the sender's name into the stored event itself.
    client = await app_client()
    name = 'Zoë "Z" \\ 🐶 <b>'
    alice, bob = await new_user(client, name), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    seen = await go_offline(bob)
    await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                             client_msg_id="n1", body='say "hi" \\ 👋'))
    sock = await bob.connect(resume_from=seen)
    await sock.expect("chat.message")
    note = await sock.expect("notification")
    assert note.notification.title == f"New message from {name}"
    assert note.notification.body == 'say "hi" \\ 👋'
    conn = await asyncpg.connect(database_url)
    try:
        title = await conn.fetchval("SELECT title FROM notifications WHERE id = $1",
                                    note.notification.id)
    finally:
        await conn.close()
    assert title == f"New message from {name}"
