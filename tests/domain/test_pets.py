"""pets.create / pets.update / pets.mine through the socket."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from protocol.objects import Sex, Species
from protocol.pets import PetsCreate, PetsMine, PetsUpdate
from protocol.types import Location
from tests.domain.conftest import AppClient, cid, new_user


async def test_create_update_and_list_own_pets(app_client: AppClient) -> None:
    client = await app_client()
    alice = await new_user(client)
    created = await alice.cmd(PetsCreate(
        id=cid(), name="  Bella ", species=Species.CAT, breed="Siamese", sex=Sex.FEMALE,
        birth_date=date(2020, 5, 1), bio="Loves naps", location=Location(lat=48.1, lng=11.5)))
    pet = created.pet
    assert pet.name == "Bella" and pet.owner_id == alice.id and pet.photo_ids == []
    assert pet.location == Location(lat=48.1, lng=11.5)

    updated = await alice.cmd(PetsUpdate(id=cid(), pet_id=pet.id, name="Bella II", breed=None,
                                         location=None))
    assert updated.pet.name == "Bella II"
    assert updated.pet.breed is None and updated.pet.location is None
    assert updated.pet.bio == "Loves naps"  # absent: unchanged

    second = await alice.pet("Rex")
    mine = await alice.cmd(PetsMine(id=cid()))
    assert [p.id for p in mine.pets] == [pet.id, second.id]
    await alice.sock.expect_nothing(0.1)  # pets cause no events


async def test_create_is_idempotent_by_key(app_client: AppClient) -> None:
    alice = await new_user(await app_client())
    first = await alice.cmd(PetsCreate(id=cid(), name="Rex", species=Species.DOG,
                                       idempotency_key="k1"))
    again = await alice.cmd(PetsCreate(id=cid(), name="Rex", species=Species.DOG,
                                       idempotency_key="k1"))
    assert again.pet == first.pet
    assert len((await alice.cmd(PetsMine(id=cid()))).pets) == 1


async def test_only_the_owner_may_update(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    pet = await alice.pet()
    error = await bob.error(PetsUpdate(id=cid(), pet_id=pet.id, name="Mine now"))
    assert error.code == "forbidden"
    for unknown in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        error = await bob.error(PetsUpdate(id=cid(), pet_id=unknown, name="x"))
        assert error.code == "not_found"


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"name": "   "}, "bad_request", "name"),
        ({"name": "x" * 61}, "too_large", "name"),
        ({"bio": "x" * 1001}, "too_large", "bio"),
        ({"birth_date": (datetime.now(UTC) + timedelta(days=2)).date().isoformat()},
         "bad_request", "birth_date"),
        ({"location": {"lat": 91, "lng": 0}}, "bad_request", "location.lat"),
        ({"location": {"lat": 0, "lng": -181}}, "bad_request", "location.lng"),
        ({"species": "dragon"}, "bad_request", "species"),
    ],
)
async def test_validation(app_client: AppClient, fields: dict[str, object], code: str,
                          fragment: str) -> None:
    alice = await new_user(await app_client())
    frame = {"type": "pets.create", "id": "v1", "name": "Rex", "species": "dog", **fields}
    await alice.sock.send_raw(json.dumps(frame))
    error = await alice.sock.expect("error")
    assert error.id == "v1" and error.code == code and fragment in error.message, error


async def test_photo_ids_must_be_own_uploads(app_client: AppClient) -> None:
    alice = await new_user(await app_client())
    error = await alice.error(PetsCreate(id=cid(), name="Rex", species=Species.DOG,
                                         photo_ids=["not-an-upload"]))
    assert error.code == "not_found" and "photo_ids[0]" in error.message
