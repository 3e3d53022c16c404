"""Plain SQL for adoption listings and applications (``0009_adoption.sql``).

Search pages are built by ``*_page_sql`` functions (tests and the bench ``EXPLAIN``
exactly what runs); the keyset is left out of a first page's SQL (see
``server.domain.community.store``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from server.domain.safety.store import not_blocked

LISTING_COLUMNS = """l.id::text AS id, l.lister_id::text AS lister_id, l.title, l.description,
    l.lat, l.lng, l.pub_lat, l.pub_lng, l.fee_cents, l.currency, l.status,
    l.photo_ids::text[] AS photo_ids, l.created_at, l.updated_at,
    p.id::text AS pet_id, p.owner_id::text AS pet_owner_id, p.name AS pet_name,
    p.species AS pet_species, p.breed AS pet_breed, p.sex AS pet_sex,
    p.birth_date AS pet_birth_date, p.bio AS pet_bio, p.photo_ids::text[] AS pet_photo_ids,
    p.lat AS pet_lat, p.lng AS pet_lng,
    coarse_deg(p.lat) AS pet_pub_lat, coarse_deg(p.lng) AS pet_pub_lng"""

APPLICATION_COLUMNS = """a.id::text AS id, a.listing_id::text AS listing_id,
    a.applicant_id::text AS applicant_id, a.message, a.status,
    a.conversation_id::text AS conversation_id, a.note, a.created_at, a.decided_at"""

# $1 is the viewer. Listed (available) and shown to the viewer.
_SHOWN = (f"l.status = 'available' AND (lu.banned_at IS NULL OR l.lister_id = $1) "
          f"AND {not_blocked('l.lister_id', '$1')}")
_SPECIES = "(cardinality($3::text[]) = 0 OR p.species = ANY($3::text[]))"
_DISTANCE = "lf_distance_m($4::float8, $5::float8, l.pub_lat, l.pub_lng)"
# The point lies in the search circle's bounding box, modulo 360° of longitude (GiST).
_IN_BOX = """(l.pub_point <@ lf_cap_box($4::float8, $5::float8, $6::float8)
    OR l.pub_point <@ (lf_cap_box($4::float8, $5::float8, $6::float8) + point(360, 0))
    OR l.pub_point <@ (lf_cap_box($4::float8, $5::float8, $6::float8) - point(360, 0)))"""


# --- listings ------------------------------------------------------------------------------

async def insert_listing(
    conn: asyncpg.Connection, *, lister_id: str, pet_id: str, title: str, description: str,
    lat: float, lng: float, fee_cents: int | None, currency: str | None, photo_ids: list[str],
) -> str:
    """The new listing's id; raises ``asyncpg.UniqueViolationError`` if the pet has an
    open listing."""
    listing_id: str = await conn.fetchval(
        """INSERT INTO adoption_listings (lister_id, pet_id, title, description, lat, lng,
                                          fee_cents, currency, photo_ids)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::uuid[]) RETURNING id::text""",
        lister_id, pet_id, title, description, lat, lng, fee_cents, currency, photo_ids,
    )
    return listing_id


async def select_open_listing_of_pet(conn: asyncpg.Connection, pet_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM adoption_listings WHERE pet_id = $1 AND status IN ('available', "
        "'pending')", pet_id)
    return found is not None


async def select_listing(conn: asyncpg.Connection, listing_id: str, viewer: str, *,
                         for_update: bool = False) -> asyncpg.Record | None:
    """The listing with its pet, whether its lister is banned, whether moderation removed
    it, whether a block separates lister and viewer, and whether the viewer ever applied
    to it."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {LISTING_COLUMNS}, lu.banned_at IS NOT NULL AS lister_banned,
                   l.removed_at IS NOT NULL AS removed,
                   NOT {not_blocked('l.lister_id', '$2')} AS blocked,
                   EXISTS (SELECT 1 FROM adoption_applications a
                           WHERE a.listing_id = l.id AND a.applicant_id = $2) AS applied
            FROM adoption_listings l
            JOIN users lu ON lu.id = l.lister_id
            JOIN pets p ON p.id = l.pet_id
            WHERE l.id = $1""" + (" FOR UPDATE OF l" if for_update else ""),
        listing_id, viewer,
    )
    return row


async def update_listing(conn: asyncpg.Connection, listing_id: str, changes: dict[str, Any]
                         ) -> None:
    """Set the given columns (names come from the service, never from a client)."""
    assignments = []
    values: list[Any] = [listing_id]
    for column, value in changes.items():
        values.append(value)
        cast = "::uuid[]" if column == "photo_ids" else ""
        assignments.append(f"{column} = ${len(values)}{cast}")
    assignments.append("updated_at = clock_timestamp()")
    await conn.execute(
        f"UPDATE adoption_listings SET {', '.join(assignments)} WHERE id = $1", *values)


async def select_listing_for_removal(conn: asyncpg.Connection, listing_id: str
                                     ) -> asyncpg.Record | None:
    """The listing's lister, title, status and whether it was removed, locked (as every
    status change of a listing locks it first)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT lister_id::text AS lister_id, title, status, removed_at IS NOT NULL AS removed
           FROM adoption_listings WHERE id = $1 FOR UPDATE""",
        listing_id,
    )
    return row


async def update_listing_removed(conn: asyncpg.Connection, listing_id: str) -> None:
    """Moderation removes the listing: withdrawn if it was open (adopted and withdrawn are
    final and stay), ``removed_at`` set."""
    await conn.execute(
        """UPDATE adoption_listings
           SET removed_at = clock_timestamp(), updated_at = clock_timestamp(),
               status = CASE WHEN status IN ('available', 'pending') THEN 'withdrawn'
                             ELSE status END
           WHERE id = $1""",
        listing_id,
    )


def geo_page_sql(keyset: bool) -> str:
    """$1 viewer, $2 limit, $3 species ('{}' for any), $4/$5 centre, $6 radius (m), then
    the keyset (distance, id)."""
    after = f"({_DISTANCE}, l.id) > ($7::float8, $8::uuid)" if keyset else "true"
    return f"""SELECT {LISTING_COLUMNS}, {_DISTANCE} AS distance_m
               FROM adoption_listings l
               JOIN users lu ON lu.id = l.lister_id
               JOIN pets p ON p.id = l.pet_id
               WHERE {_SHOWN} AND {_IN_BOX} AND {_DISTANCE} <= $6::float8
                 AND {_SPECIES} AND {after}
               ORDER BY distance_m, l.id LIMIT $2"""


def recent_page_sql(keyset: bool) -> str:
    """$1 viewer, $2 limit, $3 species, then the keyset (created_at, id) descending."""
    after = "(l.created_at, l.id) < ($4::timestamptz, $5::uuid)" if keyset else "true"
    return f"""SELECT {LISTING_COLUMNS}, NULL::float8 AS distance_m
               FROM adoption_listings l
               JOIN users lu ON lu.id = l.lister_id
               JOIN pets p ON p.id = l.pet_id
               WHERE {_SHOWN} AND {_SPECIES} AND {after}
               ORDER BY l.created_at DESC, l.id DESC LIMIT $2"""


async def select_listings(conn: asyncpg.Connection, sql: str, args: list[Any]
                          ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


# --- applications ----------------------------------------------------------------------------

async def insert_application(conn: asyncpg.Connection, *, listing_id: str, applicant_id: str,
                             message: str) -> asyncpg.Record | None:
    """The new application, or None if the applicant has a live one for the listing."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH a AS (
                INSERT INTO adoption_applications (listing_id, applicant_id, message)
                VALUES ($1, $2, $3)
                ON CONFLICT (listing_id, applicant_id)
                    WHERE status IN ('submitted', 'accepted') DO NOTHING
                RETURNING *)
            SELECT {APPLICATION_COLUMNS} FROM a""",
        listing_id, applicant_id, message,
    )
    return row


async def select_application(conn: asyncpg.Connection, application_id: str, *,
                             for_update: bool = False) -> asyncpg.Record | None:
    """The application with its listing's lister and state."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {APPLICATION_COLUMNS}, l.lister_id::text AS lister_id,
                   l.status AS listing_status, l.title AS listing_title
            FROM adoption_applications a JOIN adoption_listings l ON l.id = a.listing_id
            WHERE a.id = $1""" + (" FOR UPDATE OF a" if for_update else ""),
        application_id,
    )
    return row


async def update_application(conn: asyncpg.Connection, application_id: str, *, status: str,
                             note: str | None = None, conversation_id: str | None = None
                             ) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH a AS (
                UPDATE adoption_applications
                SET status = $2, note = coalesce($3, note),
                    conversation_id = coalesce($4::uuid, conversation_id),
                    decided_at = CASE WHEN $2 IN ('accepted', 'rejected')
                                      THEN clock_timestamp() ELSE decided_at END
                WHERE id = $1 RETURNING *)
            SELECT {APPLICATION_COLUMNS} FROM a""",
        application_id, status, note, conversation_id,
    )
    return row


async def update_applications_rejected(conn: asyncpg.Connection, listing_id: str,
                                       statuses: list[str]) -> list[asyncpg.Record]:
    """Reject every application of the listing in one of ``statuses``; the changed rows."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""WITH a AS (
                UPDATE adoption_applications SET status = 'rejected',
                       decided_at = clock_timestamp()
                WHERE listing_id = $1 AND status = ANY($2::text[]) RETURNING *)
            SELECT {APPLICATION_COLUMNS} FROM a ORDER BY a.created_at, a.id""",
        listing_id, statuses,
    )
    return rows


async def select_accepted_application(conn: asyncpg.Connection, listing_id: str
                                      ) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {APPLICATION_COLUMNS} FROM adoption_applications a
            WHERE a.listing_id = $1 AND a.status = 'accepted'""",
        listing_id,
    )
    return row


def listing_applications_sql(keyset: bool) -> str:
    """$1 the lister, $2 limit, $3 listing, then the keyset; newest first. Applicants on
    either side of a block with the lister are left out."""
    after = "(a.created_at, a.id) < ($4::timestamptz, $5::uuid)" if keyset else "true"
    return f"""SELECT {APPLICATION_COLUMNS} FROM adoption_applications a
               WHERE a.listing_id = $3 AND {not_blocked('a.applicant_id', '$1')} AND {after}
               ORDER BY a.created_at DESC, a.id DESC LIMIT $2"""


def own_applications_sql(keyset: bool) -> str:
    """$1 the applicant, $2 limit, then the keyset; newest first."""
    after = "(a.created_at, a.id) < ($3::timestamptz, $4::uuid)" if keyset else "true"
    return f"""SELECT {APPLICATION_COLUMNS} FROM adoption_applications a
               WHERE a.applicant_id = $1 AND {after}
               ORDER BY a.created_at DESC, a.id DESC LIMIT $2"""


async def select_applications(conn: asyncpg.Connection, sql: str, args: list[Any]
                              ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


def keyset_args(after: tuple[datetime, str] | tuple[float, str] | None) -> list[Any]:
    return list(after) if after else []
