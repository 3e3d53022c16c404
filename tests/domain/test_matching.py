"""preferences.update, discovery.candidates, swipe, matches.list, matches.unmatch."""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg

from protocol.chat import ChatSend
from protocol.matching import (
    DiscoveryCandidates,
    MatchesList,
    MatchesUnmatch,
    PreferencesUpdate,
    Swipe,
    SwipeDirection,
)
from protocol.objects import Species
from tests.domain.conftest import AppClient, cid, make_match, new_user

LIKE, PASS = SwipeDirection.LIKE, SwipeDirection.PASS


async def test_preferences_update_merges_and_checks_age_bounds(app_client: AppClient) -> None:
    alice = await new_user(await app_client())
    result = await alice.cmd(PreferencesUpdate(id=cid(), species=[Species.DOG],
                                               min_age_years=2))
    prefs = result.preferences
    assert prefs.species == [Species.DOG] and prefs.min_age_years == 2
    assert prefs.max_distance_km == 50  # default
    result = await alice.cmd(PreferencesUpdate(id=cid(), max_distance_km=10))
    assert result.preferences.min_age_years == 2 and result.preferences.max_distance_km == 10
    error = await alice.error(PreferencesUpdate(id=cid(), max_age_years=1))  # stored min is 2
    assert error.code == "bad_request" and "min_age_years" in error.message


async def test_candidates_nearest_first_paged_filtered(app_client: AppClient,
                                                       database_url: str) -> None:
    client = await app_client()
    alice, bob, carol, mallory = [await new_user(client) for _ in range(4)]
    mine = await alice.pet("Mine", lat=52.5200, lng=13.4050)
    await alice.pet("Also mine", lat=52.5201, lng=13.4051)  # own pets: never candidates
    # bob's pets at increasing distance (~1.1 km steps north), one cat, one far away
    near = [await bob.pet(f"B{i}", lat=52.5200 + 0.01 * i, lng=13.4050) for i in range(1, 6)]
    # Strangers' pets are placed at their 0.01° public point (the cat's: 52.52, 13.41).
    cat = await carol.pet("Cat", lat=52.5240, lng=13.4050, species=Species.CAT)
    await carol.pet("Far", lat=48.1351, lng=11.5820)  # Munich, ~500 km
    banned = await mallory.pet("Banned", lat=52.5201, lng=13.4050)

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET banned_at = now() WHERE id = $1", mallory.id)
    finally:
        await conn.close()

    page1 = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=3))
    ids1 = [c.pet.id for c in page1.candidates]
    assert ids1 == [cat.id, near[0].id, near[1].id]
    # Bands: 100 m steps below 1 km (at least 100), whole km above.
    assert [c.distance_m for c in page1.candidates] == [400.0, 1000.0, 2000.0]
    assert page1.next_cursor is not None
    page2 = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=3,
                                                cursor=page1.next_cursor))
    assert [c.pet.id for c in page2.candidates] == [near[2].id, near[3].id, near[4].id]
    assert banned.id not in ids1
    # last page: nothing further within 50 km
    page3 = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=3,
                                                cursor=page2.next_cursor)) \
        if page2.next_cursor else None
    assert page3 is None or page3.candidates == []

    # swiped pets drop out; preferences filter species and distance
    await alice.cmd(Swipe(id=cid(), pet_id=mine.id, target_pet_id=near[0].id, direction=PASS))
    await alice.cmd(PreferencesUpdate(id=cid(), species=[Species.DOG], max_distance_km=3))
    again = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=10))
    assert [c.pet.id for c in again.candidates] == [near[1].id]

    bad = await alice.error(DiscoveryCandidates(id=cid(), pet_id=mine.id, cursor="garbage!"))
    assert bad.code == "bad_request"
    other = await bob.error(DiscoveryCandidates(id=cid(), pet_id=mine.id))
    assert other.code == "forbidden"


async def test_candidates_age_preferences(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = await alice.pet()
    today = date.today()
    young = await bob.pet("Young", birth_date=today.replace(year=today.year - 1))
    old = await bob.pet("Old", birth_date=today.replace(year=today.year - 8), lat=52.53)
    await bob.pet("Unknown age", lat=52.54)
    await alice.cmd(PreferencesUpdate(id=cid(), min_age_years=5, max_age_years=10))
    result = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id))
    assert [c.pet.id for c in result.candidates] == [old.id]
    await alice.cmd(PreferencesUpdate(id=cid(), min_age_years=None, max_age_years=2))
    result = await alice.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id))
    assert [c.pet.id for c in result.candidates] == [young.id]


async def test_mutual_like_matches_once_and_notifies_both(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    rex, bella = await alice.pet("Rex"), await bob.pet("Bella")
    first = await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=bella.id,
                                  direction=LIKE))
    assert first.match is None
    await alice.sock.expect_nothing(0.1)
    second = await bob.cmd(Swipe(id=cid(), pet_id=bella.id, target_pet_id=rex.id,
                                 direction=LIKE))
    match = second.match
    assert match is not None and sorted(match.pet_ids) == sorted([rex.id, bella.id])
    assert sorted(match.user_ids) == sorted([alice.id, bob.id])
    for user, own, other in ((alice, "Rex", "Bella"), (bob, "Bella", "Rex")):
        event = await user.sock.expect("match.created")
        assert event.match == match
        note = await user.sock.expect("notification")
        assert note.notification.kind == "match.created"
        assert note.notification.data["match_id"] == match.id
        assert note.notification.body == f"{own} and {other} liked each other"
    # repeating either swipe changes nothing and returns the existing match
    again = await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=bella.id,
                                  direction=LIKE))
    assert again.match == match
    again = await bob.cmd(Swipe(id=cid(), pet_id=bella.id, target_pet_id=rex.id,
                                direction=PASS))
    assert again.match == match
    await alice.sock.expect_nothing(0.1)
    await bob.sock.expect_nothing(0.1)
    listed = await alice.cmd(MatchesList(id=cid()))
    assert listed.matches == [match]


async def test_a_pass_is_final_and_never_matches(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    rex, bella = await alice.pet(), await bob.pet()
    await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=bella.id, direction=PASS))
    # changing one's mind is not possible: the first swipe stands
    await alice.cmd(Swipe(id=cid(), pet_id=rex.id, target_pet_id=bella.id, direction=LIKE))
    result = await bob.cmd(Swipe(id=cid(), pet_id=bella.id, target_pet_id=rex.id,
                                 direction=LIKE))
    assert result.match is None


async def test_swipe_errors(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    rex, also, bella = await alice.pet(), await alice.pet("Also"), await bob.pet()
    unknown = "00000000-0000-0000-0000-000000000000"
    cases = [
        (Swipe(id=cid(), pet_id=bella.id, target_pet_id=rex.id, direction=LIKE), "forbidden"),
        (Swipe(id=cid(), pet_id=unknown, target_pet_id=bella.id, direction=LIKE), "not_found"),
        (Swipe(id=cid(), pet_id=rex.id, target_pet_id=unknown, direction=LIKE), "not_found"),
        (Swipe(id=cid(), pet_id=rex.id, target_pet_id=also.id, direction=LIKE), "bad_request"),
        (Swipe(id=cid(), pet_id=rex.id, target_pet_id=rex.id, direction=LIKE), "bad_request"),
    ]
    for command, code in cases:
        assert (await alice.error(command)).code == code, command


async def test_simultaneous_likes_on_two_nodes_make_exactly_one_match(
    app_client: AppClient, database_url: str
) -> None:
    node1, node2 = await app_client(), await app_client()
    alice, bob = await new_user(node1, "Alice"), await new_user(node2, "Bob")
    rounds = 12
    alice_pets = [await alice.pet(f"A{i}") for i in range(rounds)]
    bob_pets = [await bob.pet(f"B{i}") for i in range(rounds)]
    matches = []
    for a_pet, b_pet in zip(alice_pets, bob_pets, strict=True):
        ra, rb = await asyncio.gather(
            alice.cmd(Swipe(id=cid(), pet_id=a_pet.id, target_pet_id=b_pet.id,
                            direction=LIKE)),
            bob.cmd(Swipe(id=cid(), pet_id=b_pet.id, target_pet_id=a_pet.id,
                          direction=LIKE)),
        )
        made = [r.match for r in (ra, rb) if r.match is not None]
        assert len(made) == 1, (ra, rb)
        matches.append(made[0])
    for user in (alice, bob):
        created = []
        for _ in range(rounds):
            created.append((await user.sock.expect("match.created")).match.id)
            await user.sock.expect("notification")
        assert sorted(created) == sorted(m.id for m in matches)
        await user.sock.expect_nothing(0.2)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM matches") == rounds
        assert await conn.fetchval("SELECT count(*) FROM conversations") == rounds
    finally:
        await conn.close()


async def test_unmatch_closes_the_conversation_for_both(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, eve = (await new_user(client), await new_user(client),
                       await new_user(client))
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    assert (await eve.error(MatchesUnmatch(id=cid(), match_id=match.id))).code == "not_found"
    await bob.cmd(MatchesUnmatch(id=cid(), match_id=match.id))
    for user in (alice, bob):
        event = await user.sock.expect("conversation.closed")
        assert event.conversation_id == match.conversation_id
    await alice.cmd(MatchesUnmatch(id=cid(), match_id=match.id))  # no-op
    await alice.sock.expect_nothing(0.1)
    assert (await alice.cmd(MatchesList(id=cid()))).matches == []
    error = await alice.error(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                       client_msg_id="m1", body="still there?"))
    assert error.code == "conflict"


async def test_matches_list_pages_newest_first(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    mine = await alice.pet()
    made = []
    for i in range(3):
        other = await new_user(client)
        made.append(await make_match(alice, mine, other, await other.pet(f"P{i}")))
    page1 = await alice.cmd(MatchesList(id=cid(), limit=2))
    assert [m.id for m in page1.matches] == [made[2].id, made[1].id]
    page2 = await alice.cmd(MatchesList(id=cid(), limit=2, cursor=page1.next_cursor))
    assert [m.id for m in page2.matches] == [made[0].id] and page2.next_cursor is None


async def test_forged_cursors_are_bad_request(app_client: AppClient) -> None:
    from protocol.chat import ChatConversations
    from protocol.notifications import NotificationsList
    from server.domain.cursors import encode_cursor

    alice = await new_user(await app_client())
    mine = await alice.pet()
    forged = encode_cursor(1.5, "not-a-uuid")
    for command in (DiscoveryCandidates(id=cid(), pet_id=mine.id, cursor=forged),
                    MatchesList(id=cid(), cursor="%%%"),
                    ChatConversations(id=cid(), cursor=forged),
                    NotificationsList(id=cid(), cursor=forged)):
        error = await alice.error(command)
        assert error.code == "bad_request" and error.message.startswith("cursor"), command
