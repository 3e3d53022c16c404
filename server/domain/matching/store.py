"""Plain SQL for preferences, discovery, swipes and matches."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from server.domain.pets.store import PET_COLUMNS
from server.domain.safety.store import not_blocked

EARTH_RADIUS_M = 6_371_008.8

DISTANCE_BAND_SQL = ("(CASE WHEN {d} < 1000 THEN greatest(100, ceil({d} / 100) * 100) "
                     "ELSE round({d} / 1000) * 1000 END)::float8")
"""What a stranger is told of a distance in metres: up to 100 m, then whole hundreds of
metres (rounded up) below 1 km, whole kilometres (rounded) above."""

MATCH_COLUMNS = ("m.id::text AS id, m.pet_a::text AS pet_a, m.pet_b::text AS pet_b, "
                 "m.user_a::text AS user_a, m.user_b::text AS user_b, "
                 "m.conversation_id::text AS conversation_id, m.created_at, m.unmatched_at")


async def select_preferences(conn: asyncpg.Connection, user_id: str,
                             for_update: bool = False) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT species, min_age_years, max_age_years, max_distance_km FROM preferences "
        "WHERE user_id = $1" + (" FOR UPDATE" if for_update else ""),
        user_id,
    )
    return row


async def upsert_preferences(
    conn: asyncpg.Connection, user_id: str, species: list[str], min_age: int | None,
    max_age: int | None, max_distance_km: int,
) -> None:
    await conn.execute(
        """INSERT INTO preferences (user_id, species, min_age_years, max_age_years,
                                    max_distance_km)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET species = excluded.species,
               min_age_years = excluded.min_age_years, max_age_years = excluded.max_age_years,
               max_distance_km = excluded.max_distance_km, updated_at = now()""",
        user_id, species, min_age, max_age, max_distance_km,
    )


async def select_candidates(
    conn: asyncpg.Connection, *, user_id: str, pet_id: str, lat: float, lng: float,
    box: tuple[float, float, float | None, float | None], species: list[str],
    min_age: int | None, max_age: int | None, max_distance_m: float,
    after: tuple[float, str] | None, limit: int,
) -> list[asyncpg.Record]:
    """Other owners' (not banned, no block either way) pets the pet has not swiped,
    within ``max_distance_m``, nearest band first, ties by id; strictly after ``after``
    (a (band, id) keyset).

    Privacy (docs/protocol.md, "Discovery"): a stranger's pet is placed at its public
    point, ``pub_lat``/``pub_lng`` = ``coarse_deg`` of its location (0.01°), and every
    distance — the radius filter, the order, ``distance_m`` — is measured from the asking
    pet to that public point, then shown as a band (``distance_band_m``): so neither the
    answer nor its cursor says more than the public point does, however the asker moves.

    The bounding box (min_lat, max_lat, min_lng?, max_lng?) is a prefilter served by
    the (lat, lng) index, on exact coordinates: the caller widens it by the rounding's
    reach; ``None`` longitudes mean the box wraps, so no lng filter."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""WITH c AS (
                SELECT {PET_COLUMNS}, coarse_deg(p.lat) AS pub_lat, coarse_deg(p.lng) AS pub_lng,
                       2 * {EARTH_RADIUS_M} * asin(least(1.0, sqrt(
                         power(sin(radians(coarse_deg(p.lat) - $3) / 2), 2)
                         + cos(radians($3)) * cos(radians(coarse_deg(p.lat)))
                           * power(sin(radians(coarse_deg(p.lng) - $4) / 2), 2)))) AS public_m
                FROM pets p JOIN users u ON u.id = p.owner_id AND u.banned_at IS NULL
                WHERE p.owner_id <> $1 AND p.lat IS NOT NULL
                  AND p.lat BETWEEN $5 AND $6
                  AND ($7::float8 IS NULL OR p.lng BETWEEN $7 AND $8)
                  AND (cardinality($9::text[]) = 0 OR p.species = ANY($9))
                  AND ($10::int IS NULL
                       OR p.birth_date <= current_date - make_interval(years => $10))
                  AND ($11::int IS NULL
                       OR p.birth_date > current_date - make_interval(years => $11 + 1))
                  AND NOT EXISTS (SELECT 1 FROM swipes s
                                  WHERE s.pet_id = $2 AND s.target_pet_id = p.id)
                  AND {not_blocked("p.owner_id", "$1")}),
            banded AS (
                SELECT c.*, {DISTANCE_BAND_SQL.format(d="public_m")} AS distance_m
                FROM c WHERE public_m <= $12)
            SELECT * FROM banded
            WHERE ($13::float8 IS NULL OR (distance_m, id::uuid) > ($13, $14::uuid))
            ORDER BY distance_m, id::uuid LIMIT $15""",
        user_id, pet_id, lat, lng, box[0], box[1], box[2], box[3], species, min_age, max_age,
        max_distance_m, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


async def lock_pet_pair(conn: asyncpg.Connection, pet_a: str, pet_b: str) -> None:
    """Serialise every swipe between the two pets (either direction), until commit."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"pet-pair:{pet_a}:{pet_b}")


async def select_pets_with_owner(conn: asyncpg.Connection, ids: list[str]
                                 ) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT p.id::text AS id, p.owner_id::text AS owner_id, p.name, "
        "u.banned_at IS NOT NULL AS owner_banned "
        "FROM pets p JOIN users u ON u.id = p.owner_id WHERE p.id = ANY($1::uuid[])",
        ids,
    )
    return {r["id"]: r for r in rows}


async def insert_swipe(conn: asyncpg.Connection, pet_id: str, target_pet_id: str,
                       direction: str) -> bool:
    """True if recorded; False if the pair was swiped before (the first swipe stands)."""
    inserted = await conn.fetchval(
        """INSERT INTO swipes (pet_id, target_pet_id, direction) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        pet_id, target_pet_id, direction,
    )
    return bool(inserted)


async def select_swipe_direction(conn: asyncpg.Connection, pet_id: str, target_pet_id: str
                                 ) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT direction FROM swipes WHERE pet_id = $1 AND target_pet_id = $2",
        pet_id, target_pet_id,
    )
    return value


async def select_match_by_pair(conn: asyncpg.Connection, pet_a: str, pet_b: str
                               ) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {MATCH_COLUMNS} FROM matches m WHERE m.pet_a = $1 AND m.pet_b = $2",
        pet_a, pet_b,
    )
    return row


async def insert_match(
    conn: asyncpg.Connection, *, pet_a: str, pet_b: str, user_a: str, user_b: str,
    conversation_id: str,
) -> asyncpg.Record | None:
    """The new match, or None if the pair already has one (the unique key)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH m AS (
                INSERT INTO matches (pet_a, pet_b, user_a, user_b, conversation_id)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pet_a, pet_b) DO NOTHING
                RETURNING *)
            SELECT {MATCH_COLUMNS} FROM m""",
        pet_a, pet_b, user_a, user_b, conversation_id,
    )
    return row


async def select_matches(
    conn: asyncpg.Connection, user_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    """The user's live matches, newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {MATCH_COLUMNS} FROM matches m
            WHERE (m.user_a = $1 OR m.user_b = $1) AND m.unmatched_at IS NULL
              AND ($2::timestamptz IS NULL OR (m.created_at, m.id) < ($2, $3::uuid))
            ORDER BY m.created_at DESC, m.id DESC LIMIT $4""",
        user_id, after[0] if after else None, after[1] if after else None, limit,
    )
    return rows


async def select_match_of_user_for_update(conn: asyncpg.Connection, match_id: str,
                                          user_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {MATCH_COLUMNS} FROM matches m
            WHERE m.id = $1 AND (m.user_a = $2 OR m.user_b = $2) FOR UPDATE""",
        match_id, user_id,
    )
    return row


async def update_match_unmatched(conn: asyncpg.Connection, match_id: str, user_id: str) -> None:
    await conn.execute(
        "UPDATE matches SET unmatched_at = now(), unmatched_by = $2 WHERE id = $1",
        match_id, user_id,
    )


async def select_matched_user_ids(conn: asyncpg.Connection, user_id: str) -> list[str]:
    """Users with at least one live match with ``user_id`` and no block between them
    (blocking ends the matches too; this also holds while that transaction runs)."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT o.other::text AS other
            FROM (SELECT CASE WHEN user_a = $1 THEN user_b ELSE user_a END AS other
                  FROM matches WHERE (user_a = $1 OR user_b = $1) AND unmatched_at IS NULL) o
            WHERE {not_blocked("o.other", "$1")}""",
        user_id,
    )
    return [r["other"] for r in rows]
