"""Pet profile commands."""

from __future__ import annotations

from datetime import date

from msgspec import UNSET, UnsetType

from protocol.base import Command, Result
from protocol.objects import Pet, Sex, Species
from protocol.types import Bio, Breed, Id, IdempotencyKey, Location, PetName, PhotoIds


class PetResult(Result, kw_only=True):
    pet: Pet


class PetsResult(Result, kw_only=True):
    pets: list[Pet]


class PetsCreate(Command, tag="pets.create", kw_only=True):
    """Create a pet owned by the user. Idempotent by ``idempotency_key``."""

    name: PetName
    species: Species
    breed: Breed | None = None
    sex: Sex | None = None
    birth_date: date | None = None
    bio: Bio | None = None
    photo_ids: PhotoIds = []
    """Approved or pending uploads of the user's (``pet_photo``); others are ``not_found``."""
    location: Location | None = None
    idempotency_key: IdempotencyKey | None = None
    result_type = PetResult


class PetsUpdate(Command, tag="pets.update", kw_only=True):
    """Change the user's pet (owner only). An absent field is left unchanged; ``null``
    clears an optional field; ``photo_ids`` replaces the whole list."""

    pet_id: Id
    name: PetName | UnsetType = UNSET
    species: Species | UnsetType = UNSET
    breed: Breed | UnsetType | None = UNSET
    sex: Sex | UnsetType | None = UNSET
    birth_date: date | UnsetType | None = UNSET
    bio: Bio | UnsetType | None = UNSET
    photo_ids: PhotoIds | UnsetType = UNSET
    location: Location | UnsetType | None = UNSET
    result_type = PetResult


class PetsMine(Command, tag="pets.mine", kw_only=True):
    """List the user's own pets, oldest first."""

    result_type = PetsResult
