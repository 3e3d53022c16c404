"""adoption.list_pet / update_listing / listing / listings (PROTOCOL §10.1)."""

from __future__ import annotations

import json
import math

from protocol.adoption import (
    AdoptionListing,
    AdoptionListings,
    AdoptionListPet,
    AdoptionUpdateListing,
    Listing,
    ListingStatus,
    ListingStatusChange,
)
from protocol.objects import Species
from protocol.types import Location
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.social import (
    HERE,
    UNKNOWN,
    add_upload,
    apply,
    ban,
    db,
    is_public,
    listing,
)

EARTH_RADIUS_M = 6_371_008.8


def north(lat: float, metres: float) -> float:
    return lat + math.degrees(metres / EARTH_RADIUS_M)


async def search(user: User, **fields: object) -> tuple[list[Listing], str | None]:
    result = await user.cmd(AdoptionListings(id=cid(), **fields))  # type: ignore[arg-type]
    return list(result.listings), result.next_cursor


async def test_list_pet_rules(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    rex = await alice.pet("Rex")
    photo = await add_upload(client, alice.id)
    made = await listing(alice, rex, title="  Rex  ", fee_cents=15000, currency="EUR",
                         photo_ids=[photo])
    assert (made.title, made.status, made.lister_id) == ("Rex", ListingStatus.AVAILABLE,
                                                         alice.id)
    assert made.pet == rex and (made.fee_cents, made.currency) == (15000, "EUR")
    assert made.photo_ids == [photo] and await is_public(client, photo)
    assert made.location == HERE and made.created_at == made.updated_at
    # One open listing per pet.
    error = await alice.error(AdoptionListPet(id=cid(), pet_id=rex.id, title="again",
                                              description="d", location=HERE))
    assert (error.code, error.message) == ("conflict",
                                           "pet_id: the pet already has an open listing")
    # Someone else's pet: visible through discovery, so forbidden; unknown: not_found.
    error = await bob.error(AdoptionListPet(id=cid(), pet_id=rex.id, title="t",
                                            description="d", location=HERE))
    assert error.code == "forbidden"
    for bad in (UNKNOWN, "nope"):
        error = await bob.error(AdoptionListPet(id=cid(), pet_id=bad, title="t",
                                                description="d", location=HERE))
        assert (error.code, error.message) == ("not_found", "pet_id: no such pet")
    # Withdrawn: the pet may be listed again.
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                          status=ListingStatusChange.WITHDRAWN))
    assert (await listing(alice, rex)).id != made.id


async def test_list_pet_bounds(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    pet = await alice.pet()
    base = {"type": "adoption.list_pet", "id": "b", "pet_id": pet.id, "title": "t",
            "description": "d", "location": {"lat": 1, "lng": 1}}
    for extra, code, fragment in (
        ({"fee_cents": 100}, "bad_request", "currency: give fee_cents and currency together"),
        ({"currency": "EUR"}, "bad_request", "currency: give fee_cents and currency"),
        ({"fee_cents": 100, "currency": "eur"}, "bad_request", "currency"),
        ({"fee_cents": 1_000_001, "currency": "EUR"}, "bad_request", "fee_cents"),
        ({"fee_cents": -1, "currency": "EUR"}, "bad_request", "fee_cents"),
        ({"title": "x" * 121}, "too_large", "title"),
        ({"title": ""}, "bad_request", "title"),
        ({"description": "x" * 5001}, "too_large", "description"),
        ({"location": None}, "bad_request", "location"),
    ):
        await alice.sock.send_raw(json.dumps({**base, **extra}))
        error = await alice.sock.expect("error")
        assert error.code == code and fragment in error.message, (extra, error)
    error = await alice.error(AdoptionListPet(id=cid(), pet_id=pet.id, title="  ",
                                              description="d", location=HERE))
    assert (error.code, error.message) == ("bad_request", "title: must not be blank")
    free = await listing(alice, pet, fee_cents=0, currency="GBP")
    assert (free.fee_cents, free.currency) == (0, "GBP")


async def test_list_pet_is_idempotent_by_key(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    pet = await alice.pet()
    one = await listing(alice, pet, idempotency_key="k")
    again = await listing(alice, pet, idempotency_key="k")
    assert one == again
    assert await db(client).fetchval("SELECT count(*) FROM adoption_listings") == 1


async def test_update_listing(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    made = await listing(alice, fee_cents=5000, currency="EUR")
    photo = await add_upload(client, alice.id)
    changed = (await alice.cmd(AdoptionUpdateListing(
        id=cid(), listing_id=made.id, title="New title", description="New text",
        photo_ids=[photo]))).listing
    assert (changed.title, changed.description, changed.photo_ids) == (
        "New title", "New text", [photo])
    assert changed.updated_at > made.updated_at and await is_public(client, photo)
    changed = (await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                     fee_cents=None))).listing
    assert (changed.fee_cents, changed.currency) == (None, None)
    error = await alice.error(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                    fee_cents=100))
    assert (error.code, error.message) == ("bad_request",
                                           "currency: give fee_cents and currency together")
    changed = (await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                     fee_cents=100, currency="CHF"))).listing
    assert (changed.fee_cents, changed.currency) == (100, "CHF")
    error = await bob.error(AdoptionUpdateListing(id=cid(), listing_id=made.id, title="x"))
    assert error.code == "forbidden"
    error = await alice.error(AdoptionUpdateListing(id=cid(), listing_id=UNKNOWN, title="x"))
    assert error.code == "not_found"
    error = await alice.error(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                                    status=ListingStatusChange.ADOPTED))
    assert (error.code, error.message) == ("conflict",
                                           "status: adopted needs an accepted application")
    await alice.sock.send_raw(json.dumps({"type": "adoption.update_listing", "id": "u",
                                          "listing_id": made.id, "status": "pending"}))
    assert (await alice.sock.expect("error")).code == "bad_request"  # not settable
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                          status=ListingStatusChange.WITHDRAWN))
    error = await alice.error(AdoptionUpdateListing(id=cid(), listing_id=made.id, title="x"))
    assert (error.code, error.message) == ("conflict", "listing_id: the listing is withdrawn")


async def test_who_sees_a_listing(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob, carol = (await new_user(client), await new_user(client),
                         await new_user(client))
    made = await listing(alice, location=Location(lat=52.523456, lng=13.409876))
    seen = (await bob.cmd(AdoptionListing(id=cid(), listing_id=made.id))).listing
    assert seen.location == Location(lat=52.52, lng=13.41)  # rounded for others
    assert made.location == Location(lat=52.523456, lng=13.409876)
    await apply(bob, made.id)
    await alice.sock.expect("adoption.application")
    await alice.sock.expect("notification")
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made.id,
                                          status=ListingStatusChange.WITHDRAWN))
    # Not available any more: its lister and its applicants still see it; others do not.
    for user in (alice, bob):
        got = (await user.cmd(AdoptionListing(id=cid(), listing_id=made.id))).listing
        assert got.status is ListingStatus.WITHDRAWN
    error = await carol.error(AdoptionListing(id=cid(), listing_id=made.id))
    assert (error.code, error.message) == ("not_found", "listing_id: no such listing")
    for bad in (UNKNOWN, "nope"):
        assert (await carol.error(AdoptionListing(id=cid(), listing_id=bad))).code == (
            "not_found")


async def test_listings_nearest_first_with_radius_species_and_cursor(
        app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    lat, lng = 48.0, 11.0
    made = {}
    for km, species in ((3, Species.DOG), (1, Species.CAT), (8, Species.DOG),
                        (20, Species.RABBIT), (5, Species.DOG), (70, Species.DOG)):
        pet = await alice.pet(f"P{km}", species=species)
        made[km] = await listing(alice, pet, location=Location(lat=north(lat, km * 1000),
                                                               lng=lng))
    here = Location(lat=lat, lng=lng)
    found, cursor = await search(bob, location=here)
    assert [x.id for x in found] == [made[k].id for k in (1, 3, 5, 8, 20)] and cursor is None
    distances = [x.distance_m for x in found]
    assert distances == sorted(distances) and all(d is not None for d in distances)
    assert abs((distances[0] or 0) - 1000) < 600  # measured to the rounded point
    found, _ = await search(bob, location=here, radius_km=100)
    assert [x.id for x in found][-1] == made[70].id
    found, _ = await search(bob, location=here, species=[Species.DOG])
    assert [x.id for x in found] == [made[k].id for k in (3, 5, 8)]
    found, _ = await search(bob, location=here, species=[Species.CAT, Species.RABBIT])
    assert [x.id for x in found] == [made[k].id for k in (1, 20)]
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await search(bob, location=here, radius_km=100, limit=2,
                                    **({"cursor": cursor} if cursor else {}))
        seen += [x.id for x in page]
        if cursor is None:
            break
    assert seen == [made[k].id for k in (1, 3, 5, 8, 20, 70)]
    # Only available listings are listed.
    await alice.cmd(AdoptionUpdateListing(id=cid(), listing_id=made[1].id,
                                          status=ListingStatusChange.WITHDRAWN))
    found, _ = await search(bob, location=here)
    assert made[1].id not in [x.id for x in found]
    await bob.sock.send_raw(json.dumps({"type": "adoption.listings", "id": "r",
                                        "radius_km": 10}))
    error = await bob.sock.expect("error")
    assert (error.code, error.message) == ("bad_request", "radius_km: needs location")


async def test_listings_newest_first_without_location(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    made = [await listing(alice, await alice.pet(f"P{i}"),
                          location=Location(lat=float(i), lng=float(-i))) for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await search(bob, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [x.id for x in page]
        if cursor is None:
            break
        await listing(alice, await alice.pet("late"))  # newer: above the pages read
    assert seen == [m.id for m in reversed(made)]
    assert all(x.distance_m is None for x in page)
    # A distance cursor is not a time cursor.
    _, geo_cursor = await search(bob, location=HERE, radius_km=500, limit=1)
    error = await bob.error(AdoptionListings(id=cid(), cursor=geo_cursor or "x"))
    assert error.code == "bad_request"


async def test_listings_across_the_antimeridian(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    east = await listing(alice, await alice.pet("E"), location=Location(lat=-17.0, lng=179.99))
    west = await listing(alice, await alice.pet("W"), location=Location(lat=-17.0, lng=-179.98))
    found, _ = await search(bob, location=Location(lat=-17.0, lng=-179.999), radius_km=5)
    assert [x.id for x in found] == [east.id, west.id]


async def test_a_banned_listers_listings_are_hidden(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    made = await listing(alice)
    await ban(client, alice)
    assert (await search(bob))[0] == [] and (await search(bob, location=HERE))[0] == []
    assert (await bob.error(AdoptionListing(id=cid(), listing_id=made.id))).code == (
        "not_found")
