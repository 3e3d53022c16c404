"""Presence to matched users: ephemeral events on transitions, presence.query."""

from __future__ import annotations

import asyncio

from protocol.presence import PresenceQuery
from tests.domain.conftest import AppClient, cid, make_match, new_user, wait_online


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
