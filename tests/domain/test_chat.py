"""Chat through the socket: send, history, read receipts, typing, edit/delete, membership."""

from __future__ import annotations

import json

import asyncpg

from protocol.chat import (
    ChatConversations,
    ChatDelete,
    ChatEdit,
    ChatHistory,
    ChatReadCommand,
    ChatSend,
    ChatTypingCommand,
)
from protocol.matching import MatchesUnmatch
from protocol.objects import Match
from protocol.session import Error
from tests.domain.conftest import AppClient, User, cid, make_match, new_user
from tests.support.ws import ProtocolSocket

UNKNOWN = "00000000-0000-0000-0000-000000000000"


async def pair(app_client: AppClient) -> tuple[User, User, Match]:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet("Rex"), bob, await bob.pet("Bella"))
    return alice, bob, match


def send(conversation_id: str, body: str, client_msg_id: str | None = None,
         **fields: object) -> ChatSend:
    return ChatSend(id=cid(), conversation_id=conversation_id,
                    client_msg_id=client_msg_id or cid(), body=body, **fields)  # type: ignore[arg-type]


async def test_send_reaches_every_member_and_every_device(app_client: AppClient) -> None:
    alice, bob, match = await pair(app_client)
    laptop = await alice.connect()
    result = await alice.cmd(send(match.conversation_id, "  hello Bella  ", "m-1"))
    message = result.message
    assert message.body == "hello Bella" and message.sender_id == alice.id
    assert message.client_msg_id == "m-1" and message.attachment_ids == []
    for sock in (alice.sock, laptop, bob.sock):
        event = await sock.expect("chat.message")
        assert event.message == message
    # bob is online: no notification for him
    await bob.sock.expect_nothing(0.2)


async def test_resend_with_same_client_msg_id_is_idempotent(app_client: AppClient) -> None:
    alice, bob, match = await pair(app_client)
    first = await alice.cmd(send(match.conversation_id, "once", "same-key"))
    await alice.sock.expect("chat.message")
    await bob.sock.expect("chat.message")
    again = await alice.cmd(send(match.conversation_id, "once", "same-key"))
    assert again.message == first.message
    await alice.sock.expect_nothing(0.2)
    await bob.sock.expect_nothing(0.05)
    history = await bob.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id))
    assert [m.id for m in history.messages] == [first.message.id]


async def test_body_rules(app_client: AppClient) -> None:
    alice, _, match = await pair(app_client)
    blank = await alice.error(send(match.conversation_id, " \n\t "))
    assert blank.code == "bad_request" and blank.message.startswith("body")
    await alice.sock.send_raw(json.dumps({
        "type": "chat.send", "id": "big", "conversation_id": match.conversation_id,
        "client_msg_id": "x", "body": "a" * 4001}))
    error = await alice.sock.expect("error")
    assert error.id == "big" and error.code == "too_large"
    exact = await alice.cmd(send(match.conversation_id, "b" * 4000))
    assert len(exact.message.body) == 4000


async def test_non_member_sees_not_found_exactly_as_for_unknown_ids(
    app_client: AppClient,
) -> None:
    alice, bob, match = await pair(app_client)
    sent = (await alice.cmd(send(match.conversation_id, "private"))).message
    eve = await new_user(alice.client, "Eve")
    conv = match.conversation_id

    async def both(make: object) -> tuple[Error, Error]:
        assert callable(make)
        real = await eve.error(make(conv, sent.id))
        fake = await eve.error(make(UNKNOWN, UNKNOWN))
        return real, fake

    makers = [
        lambda c, m: ChatHistory(id=cid(), conversation_id=c),
        lambda c, m: send(c, "hi"),
        lambda c, m: ChatReadCommand(id=cid(), conversation_id=c, message_id=m),
        lambda c, m: ChatTypingCommand(id=cid(), conversation_id=c),
        lambda c, m: ChatEdit(id=cid(), message_id=m, body="mine"),
        lambda c, m: ChatDelete(id=cid(), message_id=m),
    ]
    for make in makers:
        real, fake = await both(make)
        assert real.code == fake.code == "not_found"
        assert real.message == fake.message
    convs = await eve.cmd(ChatConversations(id=cid()))
    assert convs.conversations == []
    # and the members were told nothing
    await alice.sock.expect("chat.message")
    await bob.sock.expect("chat.message")
    await alice.sock.expect_nothing(0.1)
    await bob.sock.expect_nothing(0.05)


async def test_history_pages_backwards(app_client: AppClient) -> None:
    alice, bob, match = await pair(app_client)
    sent = [(await alice.cmd(send(match.conversation_id, f"m{i}"))).message for i in range(5)]
    page = await bob.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id, limit=2))
    assert [m.body for m in page.messages] == ["m4", "m3"]
    page = await bob.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id, limit=2,
                                     before=page.next_before))
    assert [m.body for m in page.messages] == ["m2", "m1"]
    page = await bob.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id, limit=2,
                                     before=page.next_before))
    assert [m.id for m in page.messages] == [sent[0].id] and page.next_before is None


async def test_unread_counts_follow_read_receipts(app_client: AppClient) -> None:
    alice, bob, match = await pair(app_client)
    conv = match.conversation_id
    sent = [(await alice.cmd(send(conv, f"m{i}"))).message for i in range(3)]
    for _ in sent:
        await alice.sock.expect("chat.message")
        await bob.sock.expect("chat.message")

    async def unread(user: User) -> int:
        result = await user.cmd(ChatConversations(id=cid()))
        (only,) = result.conversations
        assert only.id == conv and only.last_message is not None
        return int(only.unread_count)

    assert await unread(bob) == 3
    listed = (await bob.cmd(ChatConversations(id=cid()))).conversations[0]
    assert listed.last_message == sent[-1] and sorted(listed.member_ids) == sorted(
        [alice.id, bob.id])
    assert await unread(alice) == 0  # one's own messages are never unread
    await bob.cmd(ChatReadCommand(id=cid(), conversation_id=conv, message_id=sent[1].id))
    receipt = await alice.sock.expect("chat.read")
    assert (receipt.conversation_id, receipt.user_id, receipt.message_id) == (
        conv, bob.id, sent[1].id)
    await bob.sock.expect_nothing(0.1)  # the reader is not sent their own receipt
    assert await unread(bob) == 1
    # the read mark never moves backwards, and an unmoved mark sends nothing
    await bob.cmd(ChatReadCommand(id=cid(), conversation_id=conv, message_id=sent[0].id))
    await alice.sock.expect_nothing(0.1)
    assert await unread(bob) == 1
    await bob.cmd(ChatReadCommand(id=cid(), conversation_id=conv, message_id=sent[2].id))
    await alice.sock.expect("chat.read")
    assert await unread(bob) == 0
    # a reply makes it unread for alice
    await bob.cmd(send(conv, "hi back"))
    assert await unread(alice) == 1
    error = await bob.error(ChatReadCommand(id=cid(), conversation_id=conv, message_id=UNKNOWN))
    assert error.code == "not_found"


async def test_typing_is_ephemeral_and_throttled(app_client: AppClient) -> None:
    alice, bob, match = await pair(app_client)
    conv = match.conversation_id
    await alice.cmd(ChatTypingCommand(id=cid(), conversation_id=conv))
    event = await bob.sock.expect("chat.typing")
    assert (event.conversation_id, event.user_id) == (conv, alice.id)
    assert not hasattr(event, "seq")
    await alice.sock.expect_nothing(0.1)  # not echoed to the typist
    # within 3 s: answered ok, nothing sent
    await alice.cmd(ChatTypingCommand(id=cid(), conversation_id=conv))
    await bob.sock.expect_nothing(0.2)
    # bob's own throttle is separate
    await bob.cmd(ChatTypingCommand(id=cid(), conversation_id=conv))
    await alice.sock.expect("chat.typing")


async def test_edit_and_delete_within_15_minutes(app_client: AppClient,
                                                 database_url: str) -> None:
    alice, bob, match = await pair(app_client)
    conv = match.conversation_id
    msg = (await alice.cmd(send(conv, "typo"))).message
    await alice.sock.expect("chat.message")
    await bob.sock.expect("chat.message")
    assert (await bob.error(ChatEdit(id=cid(), message_id=msg.id, body="x"))).code == \
        "forbidden"
    edited = (await alice.cmd(ChatEdit(id=cid(), message_id=msg.id, body=" fixed "))).message
    assert edited.id == msg.id and edited.body == "fixed" and edited.edited_at is not None
    for user in (alice, bob):
        assert (await user.sock.expect("chat.message")).message == edited
    deleted = (await alice.cmd(ChatDelete(id=cid(), message_id=msg.id))).message
    assert deleted.id == msg.id and deleted.body == "" and deleted.deleted_at is not None
    for user in (alice, bob):
        assert (await user.sock.expect("chat.message")).message == deleted
    again = (await alice.cmd(ChatDelete(id=cid(), message_id=msg.id))).message
    assert again == deleted
    await bob.sock.expect_nothing(0.1)
    assert (await alice.error(ChatEdit(id=cid(), message_id=msg.id, body="y"))).code == \
        "conflict"
    history = await bob.cmd(ChatHistory(id=cid(), conversation_id=conv))
    assert history.messages == [deleted]

    old = (await alice.cmd(send(conv, "old news"))).message
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE messages SET created_at = now() - interval '16 minutes' "
                           "WHERE id = $1", old.id)
    finally:
        await conn.close()
    late = await alice.error(ChatEdit(id=cid(), message_id=old.id, body="too late"))
    assert late.code == "conflict" and "15 minutes" in late.message
    assert (await alice.error(ChatDelete(id=cid(), message_id=old.id))).code == "conflict"


async def test_conversations_newest_activity_first_with_cursor(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    mine = await alice.pet()
    matches = []
    for i in range(3):
        other = await new_user(client)
        matches.append(await make_match(alice, mine, other, await other.pet(f"P{i}")))
    # activity: the first conversation gets a message last
    await alice.cmd(send(matches[0].conversation_id, "bump"))
    page1 = await alice.cmd(ChatConversations(id=cid(), limit=2))
    assert [c.id for c in page1.conversations] == [matches[0].conversation_id,
                                                   matches[2].conversation_id]
    assert page1.conversations[0].last_message.body == "bump"
    assert page1.conversations[1].last_message is None
    assert page1.conversations[0].match_id == matches[0].id
    assert not page1.conversations[0].closed
    page2 = await alice.cmd(ChatConversations(id=cid(), limit=2, cursor=page1.next_cursor))
    assert [c.id for c in page2.conversations] == [matches[1].conversation_id]
    assert page2.next_cursor is None
    await alice.cmd(MatchesUnmatch(id=cid(), match_id=matches[1].id))
    page = await alice.cmd(ChatConversations(id=cid(), limit=5))
    closed = {c.id: c.closed for c in page.conversations}
    assert closed[matches[1].conversation_id] is True
    # history stays readable after the unmatch
    await alice.cmd(ChatHistory(id=cid(), conversation_id=matches[1].conversation_id))


async def test_a_recorded_send_is_answered_with_the_first_result_after_the_close(
    app_client: AppClient,
) -> None:
    alice, bob, match = await pair(app_client)
    first = await alice.cmd(send(match.conversation_id, "before", "k-close"))
    await alice.cmd(MatchesUnmatch(id=cid(), match_id=match.id))
    again = await alice.cmd(send(match.conversation_id, "before", "k-close"))
    assert again.message == first.message
    refused = await alice.error(send(match.conversation_id, "after", "k-new"))
    assert refused.code == "conflict"
    history = await bob.cmd(ChatHistory(id=cid(), conversation_id=match.conversation_id))
    assert [m.id for m in history.messages] == [first.message.id]


async def test_concurrent_sends_keep_every_stream_in_order_without_gaps(
    app_client: AppClient,
) -> None:
    import asyncio

    alice, bob, match = await pair(app_client)
    watcher_a, watcher_b = await alice.connect(), await bob.connect()
    start_a = watcher_a.welcome.last_seq if watcher_a.welcome else 0
    start_b = watcher_b.welcome.last_seq if watcher_b.welcome else 0
    count = 15
    # Both users, from two sockets each, sending at once (and one resend each).
    socks = [alice.sock, await alice.connect(), bob.sock, await bob.connect()]

    async def burst(n: int, sock: ProtocolSocket) -> list[str]:
        return [(await sock.command(send(match.conversation_id, f"m{i}",
                                         f"k{n}-{i % (count - 1)}"))).message.id
                for i in range(count)]

    sent = await asyncio.gather(*(burst(n, sock) for n, sock in enumerate(socks)))
    ids = {i for one in sent for i in one}
    assert len(ids) == 4 * (count - 1)  # each socket's last send repeated its first key
    for sock, start in ((watcher_a, start_a), (watcher_b, start_b)):
        seqs = []
        got: set[str] = set()
        for _ in range(len(ids)):
            event = await sock.expect("chat.message", timeout=10)
            seqs.append(event.seq)
            got.add(event.message.id)
        assert seqs == list(range(start + 1, start + 1 + len(ids)))
        assert got == ids
        await sock.expect_nothing(0.05)


async def test_a_send_marks_every_members_stream_as_moved(app_client: AppClient,
                                                          database_url: str) -> None:
    """The position check reads only streams whose ``change_id`` moved (migration 0014),
    so the one-statement send must stamp it like ``Transaction.append`` does: else a
    message whose broker notice was dropped would never be found."""
    alice, bob, match = await pair(app_client)
    conn = await asyncpg.connect(database_url)
    try:
        async def marks() -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT user_id::text, coalesce(change_id, 0) AS c FROM user_streams "
                "WHERE user_id = ANY($1::uuid[])", [alice.id, bob.id])
            return {r["user_id"]: r["c"] for r in rows}

        before = await marks()
        await alice.cmd(send(match.conversation_id, "stamped"))
        after = await marks()
    finally:
        await conn.close()
    for user in (alice.id, bob.id):
        assert after[user] > before.get(user, 0)
