"""Pet profiles: create (idempotent), owner-only update, list the user's own."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from msgspec import UNSET

from protocol.objects import Pet, Sex, Species
from protocol.pets import PetResult, PetsCreate, PetsResult, PetsUpdate
from protocol.types import Location
from server.deps import Deps
from server.domain.idempotency import run_idempotent
from server.domain.pets import store
from server.domain.safety.store import blocked_between
from server.domain.uploads.attachments import check_owned_uploads, mark_public
from server.errors import BadRequest, Forbidden, NotFound
from server.ids import require_id
from server.realtime.stream import Transaction


def pet_from_row(row: asyncpg.Record) -> Pet:
    location = (Location(lat=row["lat"], lng=row["lng"]) if row["lat"] is not None else None)
    return Pet(
        id=row["id"], owner_id=row["owner_id"], name=row["name"], species=Species(row["species"]),
        breed=row["breed"], sex=Sex(row["sex"]) if row["sex"] else None,
        birth_date=row["birth_date"], bio=row["bio"], photo_ids=list(row["photo_ids"]),
        location=location,
    )


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise BadRequest("name: must not be blank")
    return name


def _breed(value: str | None) -> str | None:
    if value is None:
        return None
    breed = value.strip()
    if not breed:
        raise BadRequest("breed: must not be blank (send null to clear it)")
    return breed


def _birth_date(value: date | None) -> date | None:
    if value is not None and value > datetime.now(UTC).date():
        raise BadRequest("birth_date: must not be in the future")
    return value


def _bio(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


class PetService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.settings = deps.settings
        self.stream = deps.stream
        self.limiter = deps.limiter

    async def create(self, user_id: str, cmd: PetsCreate) -> PetResult:
        name, breed = _name(cmd.name), _breed(cmd.breed)
        birth_date, bio = _birth_date(cmd.birth_date), _bio(cmd.bio)

        async def work(tx: Transaction) -> PetResult:
            # Inside the idempotent work: a resend of a created pet is never refused.
            limit = self.settings.pets_create_per_day
            await self.limiter.take(f"pets.create:{user_id}", limit, 86400.0,
                                    f"pets.create: at most {limit} per day; try again later")
            photos = await check_owned_uploads(tx.conn, user_id, cmd.photo_ids)
            await mark_public(tx.conn, user_id, photos)
            row = await store.insert_pet(
                tx.conn, user_id, name=name, species=cmd.species.value, breed=breed,
                sex=cmd.sex.value if cmd.sex else None, birth_date=birth_date, bio=bio,
                photo_ids=photos, lat=cmd.location.lat if cmd.location else None,
                lng=cmd.location.lng if cmd.location else None,
            )
            return PetResult(pet=pet_from_row(row))

        return await run_idempotent(self.stream, user_id=user_id, scope="pets.create",
                                    key=cmd.idempotency_key, result_type=PetResult, work=work)

    async def update(self, user_id: str, cmd: PetsUpdate) -> PetResult:
        pet_id = require_id(cmd.pet_id, "pet_id", "no such pet")
        changes: dict[str, Any] = {}
        if cmd.name is not UNSET:
            changes["name"] = _name(cmd.name)
        if cmd.species is not UNSET:
            changes["species"] = cmd.species.value
        if cmd.breed is not UNSET:
            changes["breed"] = _breed(cmd.breed)
        if cmd.sex is not UNSET:
            changes["sex"] = cmd.sex.value if cmd.sex else None
        if cmd.birth_date is not UNSET:
            changes["birth_date"] = _birth_date(cmd.birth_date)
        if cmd.bio is not UNSET:
            changes["bio"] = _bio(cmd.bio)
        if cmd.location is not UNSET:
            changes["lat"] = cmd.location.lat if cmd.location else None
            changes["lng"] = cmd.location.lng if cmd.location else None
        async with self.stream.transaction() as tx:
            row = await store.select_pet_for_update(tx.conn, pet_id)
            if row is None or (row["owner_id"] != user_id and (
                    row["owner_banned"]
                    or await blocked_between(tx.conn, user_id, row["owner_id"]))):
                raise NotFound("pet_id: no such pet")
            if row["owner_id"] != user_id:
                raise Forbidden("pet_id: only the pet's owner can change it")
            if cmd.photo_ids is not UNSET:
                changes["photo_ids"] = await check_owned_uploads(
                    tx.conn, user_id, cmd.photo_ids)
                # A pet profile is public: its (approved) photos become visible to everyone.
                # Photos dropped from the list stay public (another pet may still use them).
                await mark_public(tx.conn, user_id, changes["photo_ids"])
            if changes:
                row = await store.update_pet(tx.conn, pet_id, changes)
            return PetResult(pet=pet_from_row(row))

    async def mine(self, user_id: str) -> PetsResult:
        rows = await store.select_pets_by_owner(self.db, user_id)
        return PetsResult(pets=[pet_from_row(r) for r in rows])
