"""Discovery cannot locate a stranger's pet more precisely than its public point
(issue #17 item 14): locations are 0.01° public points, distances are bands measured to
that point, and the cursor carries nothing more — however the asker moves its own pet."""

from __future__ import annotations

import base64

import msgspec

from protocol.adoption import AdoptionListing, AdoptionListPet
from protocol.matching import DiscoveryCandidates
from protocol.objects import Candidate
from protocol.pets import PetsUpdate
from protocol.types import Location
from tests.domain.conftest import User, cid, new_user
from tests.gateway.conftest import AppClient


def is_band(distance: float) -> bool:
    if distance < 1000:
        return distance >= 100 and distance % 100 == 0
    return distance % 1000 == 0


async def candidates(user: User, pet_id: str) -> list[Candidate]:
    found: list[Candidate] = []
    cursor = None
    while True:
        page = await user.cmd(DiscoveryCandidates(id=cid(), pet_id=pet_id, limit=2,
                                                  cursor=cursor))
        found += page.candidates
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def test_an_observer_moving_around_learns_nothing_inside_the_public_cell(
    app_client: AppClient,
) -> None:
    client = await app_client(ws_rate_per_s=10_000.0, ws_rate_burst=10_000,
                              ws_frames_per_s=10_000.0, ws_frames_burst=10_000)
    stalker, alice, bob = [await new_user(client) for _ in range(3)]
    # Two pets at different exact places inside the same 0.01° cell (52.52, 13.40).
    a = await alice.pet("A", lat=52.52112, lng=13.40123)
    b = await bob.pet("B", lat=52.52389, lng=13.40441)
    probe = await stalker.pet("Probe", lat=52.5, lng=13.4)
    seen: dict[str, set[tuple[float, float, float]]] = {a.id: set(), b.id: set()}
    # The stalker walks its pet around them: 36 positions, 80 m to 3 km away.
    for i in range(6):
        for j in range(6):
            where = Location(lat=52.505 + 0.006 * i, lng=13.385 + 0.008 * j)
            await stalker.cmd(PetsUpdate(id=cid(), pet_id=probe.id, location=where))
            found = {c.pet.id: c for c in await candidates(stalker, probe.id)}
            assert set(found) == {a.id, b.id}
            answers = []
            for pet_id in (a.id, b.id):
                c = found[pet_id]
                assert c.pet.location is not None
                assert (c.pet.location.lat, c.pet.location.lng) == (52.52, 13.40)
                assert is_band(c.distance_m), c.distance_m
                answers.append((c.distance_m, c.pet.location.lat, c.pet.location.lng))
                seen[pet_id].add(answers[-1])
            # From every position the two are indistinguishable.
            assert answers[0] == answers[1]
    assert seen[a.id] == seen[b.id]


async def test_the_cursor_carries_only_the_band_shown(app_client: AppClient) -> None:
    client = await app_client()
    me, other = await new_user(client), await new_user(client)
    mine = await me.pet("Mine", lat=52.52, lng=13.405)
    for k in range(3):
        await other.pet(f"P{k}", lat=52.5312 + 0.0101 * k, lng=13.4077)
    page = await me.cmd(DiscoveryCandidates(id=cid(), pet_id=mine.id, limit=2))
    assert page.next_cursor is not None
    raw = base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4))
    decoded = msgspec.msgpack.decode(raw)
    assert decoded == [page.candidates[-1].distance_m, page.candidates[-1].pet.id]
    assert is_band(decoded[0])


async def test_a_listed_pets_own_location_is_public_to_others(app_client: AppClient) -> None:
    client = await app_client()
    lister, visitor = await new_user(client), await new_user(client)
    pet = await lister.pet("Rex", lat=52.52345, lng=13.40678)
    listed = await lister.cmd(AdoptionListPet(
        id=cid(), pet_id=pet.id, title="Rex", description="Calm",
        location=Location(lat=52.52345, lng=13.40678), idempotency_key=cid()))
    mine = (await lister.cmd(AdoptionListing(id=cid(), listing_id=listed.listing.id))).listing
    assert mine.pet.location == Location(lat=52.52345, lng=13.40678)
    seen = (await visitor.cmd(AdoptionListing(id=cid(), listing_id=listed.listing.id))).listing
    assert seen.pet.location == Location(lat=52.52, lng=13.41)
    assert seen.location == Location(lat=52.52, lng=13.41)
