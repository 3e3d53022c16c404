"""Plain SQL for pets."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

PET_COLUMNS = ("p.id::text AS id, p.owner_id::text AS owner_id, p.name, p.species, p.breed, "
               "p.sex, p.birth_date, p.bio, p.photo_ids::text[] AS photo_ids, p.lat, p.lng")


async def insert_pet(
    conn: asyncpg.Connection, owner_id: str, *, name: str, species: str, breed: str | None,
    sex: str | None, birth_date: date | None, bio: str | None, photo_ids: list[str],
    lat: float | None, lng: float | None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH p AS (
                INSERT INTO pets (owner_id, name, species, breed, sex, birth_date, bio,
                                  photo_ids, lat, lng)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid[], $9, $10) RETURNING *)
            SELECT {PET_COLUMNS} FROM p""",
        owner_id, name, species, breed, sex, birth_date, bio, photo_ids, lat, lng,
    )
    return row


async def select_pet_for_update(conn: asyncpg.Connection, pet_id: str) -> asyncpg.Record | None:
    """The pet with its owner's ban state, locked for an update."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {PET_COLUMNS}, u.banned_at IS NOT NULL AS owner_banned
            FROM pets p JOIN users u ON u.id = p.owner_id
            WHERE p.id = $1 FOR NO KEY UPDATE OF p""",
        pet_id,
    )
    return row


async def select_pet(conn: asyncpg.Connection, pet_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {PET_COLUMNS}, u.banned_at IS NOT NULL AS owner_banned
            FROM pets p JOIN users u ON u.id = p.owner_id WHERE p.id = $1""",
        pet_id,
    )
    return row


async def update_pet(conn: asyncpg.Connection, pet_id: str, changes: dict[str, Any]
                     ) -> asyncpg.Record:
    """Set the given columns (names come from the service, never from a client)."""
    assignments = []
    values: list[Any] = [pet_id]
    for column, value in changes.items():
        values.append(value)
        cast = "::uuid[]" if column == "photo_ids" else ""
        assignments.append(f"{column} = ${len(values)}{cast}")
    assignments.append("updated_at = now()")
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH p AS (UPDATE pets SET {', '.join(assignments)} WHERE id = $1 RETURNING *)
            SELECT {PET_COLUMNS} FROM p""",
        *values,
    )
    return row


async def select_pets_by_owner(conn: asyncpg.Connection, owner_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {PET_COLUMNS} FROM pets p WHERE p.owner_id = $1 ORDER BY p.created_at, p.id",
        owner_id,
    )
    return rows
