"""Presence to matched users: ephemeral events on transitions, presence.query."""

from __future__ import annotations

import asyncio

from protocol.matching import MatchesUnmatch
from protocol.presence import PresenceQuery
from protocol.safety import UsersBlock
from tests.domain.conftest import AppClient, User, cid, make_match, new_user, wait_online


async def test_matched_users_see_transitions_across_nodes(app_client: AppClient) -> None:
    node1, node2 = await app_client(), await app_client()
    alice, bob = await new_user(node1, "Alice"), await new_user(node2, "Bob")
    carol = await new_user(node1, "Carol")
    await make_match(alice, await alice.pet(), bob, await bob.pet())

    phone = await bob.connect()  # a second device: no transition, no event
    await alice.sock.expect_nothing(0.2)
    await phone.close()
    await alice.sock.expect_nothing(0.2)

    await bob.sock.close()
    event = await alice.sock.expect("presence")
    assert (event.user_id, event.online) == (bob.id, False)
    await wait_online(node2, bob.id, False)
    back = await bob.connect()
    event = await alice.sock.expect("presence")
    assert (event.user_id, event.online) == (bob.id, True)
    await carol.sock.expect_nothing(0.1)  # not matched: told nothing
    await back.expect_nothing(0.05)


async def test_presence_query_answers_only_for_matched_users(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    await make_match(alice, await alice.pet(), bob, await bob.pet())
    result = await alice.cmd(PresenceQuery(id=cid(), user_ids=[carol.id, bob.id, alice.id,
                                                               "nobody"]))
    assert [(p.user_id, p.online) for p in result.presence] == [
        (carol.id, False),  # online, but not matched: reported offline
        (bob.id, True), (alice.id, True), ("nobody", False)]
    await bob.sock.close()
    await alice.sock.expect("presence")
    await wait_online(client, bob.id, False)
    result = await alice.cmd(PresenceQuery(id=cid(), user_ids=[bob.id]))
    assert result.presence[0].online is False


async def test_welcome_comes_first_even_when_presence_races_the_handshake(
    app_client: AppClient,
) -> None:
    """Sockets join the hub before their welcome; a matched user's presence event offered
    in between must not overtake the welcome (it is dropped instead)."""
    client = await app_client()
    pairs = []
    for i in range(8):
        a, b = await new_user(client), await new_user(client)
        await make_match(a, await a.pet(f"A{i}"), b, await b.pet(f"B{i}"))
        pairs.append((a, b))
    for a, b in pairs:
        await a.sock.close()
        await b.sock.close()
    for a, b in pairs:
        await wait_online(client, a.id, False)
        await wait_online(client, b.id, False)
    for _ in range(3):
        # every hello() asserts that the first message is the welcome
        socks = await asyncio.gather(*(u.connect() for pair in pairs for u in pair))
        for sock in socks:
            await sock.close()
        for a, b in pairs:
            await wait_online(client, a.id, False)
            await wait_online(client, b.id, False)


async def _online(user: User, *others: User) -> list[bool]:
    result = await user.cmd(PresenceQuery(id=cid(), user_ids=[o.id for o in others]))
    return [p.online for p in result.presence]


async def test_remembered_matches_are_forgotten_on_unmatch_and_block_from_another_node(
    app_client: AppClient,
) -> None:
    """presence.query keeps the matched set on the connection; an unmatch or a block
    committed on another node must drop it there: a stale set would show the presence of
    a user who is no longer matched (a privacy bug)."""
    node1, node2 = await app_client(), await app_client()
    alice = await new_user(node1, "Alice")
    bob, carol = await new_user(node2, "Bob"), await new_user(node2, "Carol")
    a_pet = await alice.pet()
    bob_match = await make_match(alice, a_pet, bob, await bob.pet())
    await make_match(alice, await alice.pet("Max"), carol, await carol.pet())
    assert await _online(alice, bob, carol) == [True, True]  # the set is now remembered

    await bob.cmd(MatchesUnmatch(id=cid(), match_id=bob_match.id))
    await alice.sock.expect("conversation.closed")  # the event reached alice's socket
    assert await _online(alice, bob, carol) == [False, True]

    await carol.cmd(UsersBlock(id=cid(), user_id=alice.id))
    await alice.sock.expect("conversation.closed")
    assert await _online(alice, bob, carol) == [False, False]
    # Both are still online: it is the match that is gone, not the socket.
    await wait_online(node1, bob.id, True)
    await wait_online(node1, carol.id, True)


async def test_the_actor_forgets_at_once_and_a_new_match_is_seen(app_client: AppClient
                                                                  ) -> None:
    """The socket that unmatches or blocks sees the change in its very next command (no
    wait for its own event to come back through the broker); a match made on another
    node makes the partner visible once its match.created has arrived."""
    node1, node2 = await app_client(), await app_client()
    alice, bob = await new_user(node1, "Alice"), await new_user(node2, "Bob")
    dave = await new_user(node2, "Dave")
    assert await _online(alice, bob, dave) == [False, False]  # remembered: matched with none
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())  # bob's swipe
    assert await _online(alice, bob, dave) == [True, False]
    await make_match(dave, await dave.pet(), alice, await alice.pet("Max"))  # alice's swipe
    assert await _online(alice, bob, dave) == [True, True]

    await alice.cmd(MatchesUnmatch(id=cid(), match_id=match.id))
    assert await _online(alice, bob, dave) == [False, True]
    await alice.cmd(UsersBlock(id=cid(), user_id=dave.id))
    assert await _online(alice, bob, dave) == [False, False]
    for event in ("conversation.closed", "conversation.closed"):
        await alice.sock.expect(event)
    assert await _online(alice, bob, dave) == [False, False]


async def test_concurrent_queries_each_get_their_own_answer(app_client: AppClient) -> None:
    """Lookups made at the same time share one Redis pipeline; each must still get the
    answer for the users it asked about, as its own matches allow."""
    client = await app_client()
    pairs = []
    for i in range(4):
        a, b = await new_user(client), await new_user(client)
        await make_match(a, await a.pet(f"A{i}"), b, await b.pet(f"B{i}"))
        pairs.append((a, b))
    for _, b in pairs[::2]:  # every other partner goes offline
        await b.sock.close()
        await wait_online(client, b.id, False)
    for a, _ in pairs[::2]:
        await a.sock.expect("presence")
    strangers = [b.id for _, b in pairs]
    answers = await asyncio.gather(*(
        a.cmd(PresenceQuery(id=cid(), user_ids=[b.id, a.id, *strangers]))
        for a, b in pairs))
    for i, result in enumerate(answers):
        a, b = pairs[i]
        expected = [(b.id, i % 2 == 1), (a.id, True)] + [
            (s, s == b.id and i % 2 == 1) for s in strangers]
        assert [(p.user_id, p.online) for p in result.presence] == expected
