"""Lost & found SQL (plain asyncpg). Geometry lives in the migration's SQL functions:
``lf_distance_m`` (haversine metres), ``lf_cap_box`` (a circle's lat/lng bounding box,
GiST-indexed) and ``lf_public_deg`` (the rounding others see). A circle query is a box
overlap on the index, tried at longitude shifts -360/0/+360 for the antimeridian, then
the exact great-circle test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

ALERT_COLUMNS = """a.id::text AS id, a.owner_id::text AS owner_id, a.pet_id::text AS pet_id,
    a.description, a.lat, a.lng, a.pub_lat, a.pub_lng, a.radius_m, a.status, a.photo_ids,
    a.created_at, a.resolved_at"""

SIGHTING_COLUMNS = """s.id::text AS id, s.alert_id::text AS alert_id,
    s.reporter_id::text AS reporter_id, s.lat, s.lng, s.note, s.photo_ids, s.created_at"""

WATCH_COLUMNS = "w.id::text AS id, w.lat, w.lng, w.radius_m"

# Index-usable "box of column overlaps the query circle's box, modulo 360° of longitude".
# {col} is the box column; $1, $2, $3 are the query circle's lat, lng, radius.
_OVERLAPS = """({col} && lf_cap_box($1::float8, $2::float8, $3::float8)
    OR {col} && (lf_cap_box($1::float8, $2::float8, $3::float8) + point(360, 0))
    OR {col} && (lf_cap_box($1::float8, $2::float8, $3::float8) - point(360, 0)))"""


# --- alerts -------------------------------------------------------------------------

async def insert_alert(
    conn: asyncpg.Connection, *, owner_id: str, pet_id: str | None, description: str,
    lat: float, lng: float, radius_m: int, photo_ids: Sequence[str],
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO lost_alerts AS a
                (owner_id, pet_id, description, lat, lng, radius_m, photo_ids)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {ALERT_COLUMNS}""",
        owner_id, pet_id, description, lat, lng, radius_m, list(photo_ids),
    )
    return row


async def select_alert(conn: asyncpg.Connection, alert_id: str, *, lock: str = ""
                       ) -> asyncpg.Record | None:
    """The alert, or None. ``lock``: '' | 'FOR UPDATE' | 'FOR SHARE'."""
    assert lock in ("", "FOR UPDATE", "FOR SHARE")
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {ALERT_COLUMNS} FROM lost_alerts a WHERE a.id = $1 {lock}", alert_id
    )
    return row


async def update_alert(
    conn: asyncpg.Connection, alert_id: str, *, description: str | None,
    radius_m: int | None, photo_ids: Sequence[str] | None,
) -> asyncpg.Record:
    """Set the given fields (None = unchanged)."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE lost_alerts AS a SET
                description = COALESCE($2, a.description),
                radius_m = COALESCE($3, a.radius_m),
                photo_ids = COALESCE($4, a.photo_ids)
            WHERE a.id = $1 RETURNING {ALERT_COLUMNS}""",
        alert_id, description, radius_m, None if photo_ids is None else list(photo_ids),
    )
    return row


async def update_alert_resolved(conn: asyncpg.Connection, alert_id: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE lost_alerts AS a SET status = 'resolved', resolved_at = now()
            WHERE a.id = $1 RETURNING {ALERT_COLUMNS}""",
        alert_id,
    )
    return row


async def select_open_alerts_near(
    conn: asyncpg.Connection, *, lat: float, lng: float, radius_m: int, limit: int,
) -> list[asyncpg.Record]:
    """Open alerts whose public circle intersects the query circle, nearest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {ALERT_COLUMNS}, lf_distance_m($1, $2, a.pub_lat, a.pub_lng) AS distance_m
            FROM lost_alerts a
            WHERE a.status = 'open' AND {_OVERLAPS.format(col="a.pub_bbox")}
              AND lf_distance_m($1, $2, a.pub_lat, a.pub_lng) <= a.radius_m + $3
            ORDER BY distance_m, a.id
            LIMIT $4""",
        lat, lng, radius_m, limit,
    )
    return rows


# --- watches ------------------------------------------------------------------------

async def lock_user_watches(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise one user's watch changes (the per-user cap) until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lost.watch:' || $1::text))",
                       user_id)


async def count_watches(conn: asyncpg.Connection, user_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM lost_watches WHERE user_id = $1",
                                   user_id))


async def insert_watch(conn: asyncpg.Connection, *, user_id: str, lat: float, lng: float,
                       radius_m: int) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO lost_watches AS w (user_id, lat, lng, radius_m)
            VALUES ($1, $2, $3, $4) RETURNING {WATCH_COLUMNS}""",
        user_id, lat, lng, radius_m,
    )
    return row


async def delete_watch(conn: asyncpg.Connection, *, user_id: str, watch_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM lost_watches WHERE id = $1 AND user_id = $2", watch_id, user_id
    )
    return status.endswith(" 1")


async def select_watches(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {WATCH_COLUMNS} FROM lost_watches w WHERE w.user_id = $1 "
        "ORDER BY w.created_at, w.id",
        user_id,
    )
    return rows


async def select_watchers_after(
    conn: asyncpg.Connection, *, lat: float, lng: float, radius_m: int, exclude_user_id: str,
    after_user_id: str | None, limit: int,
) -> list[str]:
    """Users (not ``exclude_user_id``) with a watch circle intersecting the given circle,
    in user-id order, after ``after_user_id``; at most ``limit``."""
    rows = await conn.fetch(
        f"""SELECT DISTINCT w.user_id FROM lost_watches w
            WHERE {_OVERLAPS.format(col="w.bbox")}
              AND lf_distance_m($1, $2, w.lat, w.lng) <= w.radius_m + $3
              AND w.user_id <> $4
              AND ($5::uuid IS NULL OR w.user_id > $5::uuid)
            ORDER BY w.user_id
            LIMIT $6""",
        lat, lng, radius_m, exclude_user_id, after_user_id, limit,
    )
    return [str(r["user_id"]) for r in rows]


# --- recipients and fan-out jobs ------------------------------------------------------

async def insert_recipients(conn: asyncpg.Connection, alert_id: str,
                            user_ids: Sequence[str]) -> list[str]:
    """Record that these users are sent the alert; returns those not recorded before."""
    rows = await conn.fetch(
        """INSERT INTO lost_alert_recipients (alert_id, user_id)
           SELECT $1, u FROM unnest($2::uuid[]) AS u
           ON CONFLICT DO NOTHING RETURNING user_id""",
        alert_id, list(user_ids),
    )
    return [str(r["user_id"]) for r in rows]


async def select_recipients_after(conn: asyncpg.Connection, alert_id: str,
                                  after_user_id: str | None, limit: int) -> list[str]:
    rows = await conn.fetch(
        """SELECT user_id FROM lost_alert_recipients
           WHERE alert_id = $1 AND ($2::uuid IS NULL OR user_id > $2::uuid)
           ORDER BY user_id LIMIT $3""",
        alert_id, after_user_id, limit,
    )
    return [str(r["user_id"]) for r in rows]


async def insert_fanout_job(conn: asyncpg.Connection, alert_id: str, kind: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO lost_fanout_jobs (alert_id, kind) VALUES ($1, $2) RETURNING id",
        alert_id, kind,
    ))


async def select_next_fanout_job(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """Claim the oldest unfinished job no other transaction holds (until this one ends)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, alert_id::text AS alert_id, kind, cursor_user_id::text AS cursor_user_id
           FROM lost_fanout_jobs WHERE done_at IS NULL
           ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"""
    )
    return row


async def update_fanout_job(conn: asyncpg.Connection, job_id: int, *,
                            cursor_user_id: str | None, delivered: int, done: bool) -> None:
    await conn.execute(
        """UPDATE lost_fanout_jobs SET cursor_user_id = COALESCE($2::uuid, cursor_user_id),
               delivered = delivered + $3, batches = batches + 1,
               done_at = CASE WHEN $4 THEN now() END
           WHERE id = $1""",
        job_id, cursor_user_id, delivered, done,
    )


# --- sightings ------------------------------------------------------------------------

async def insert_sighting(
    conn: asyncpg.Connection, *, alert_id: str, reporter_id: str, lat: float, lng: float,
    note: str | None, photo_ids: Sequence[str],
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO lost_sightings AS s (alert_id, reporter_id, lat, lng, note, photo_ids)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SIGHTING_COLUMNS}""",
        alert_id, reporter_id, lat, lng, note, list(photo_ids),
    )
    return row


async def select_sightings(
    conn: asyncpg.Connection, *, alert_id: str, reporter_id: str | None,
    before: tuple[datetime, str] | None, limit: int,
) -> list[asyncpg.Record]:
    """Newest first; only ``reporter_id``'s when given; strictly before the keyset ``before``."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {SIGHTING_COLUMNS} FROM lost_sightings s
            WHERE s.alert_id = $1 AND ($2::uuid IS NULL OR s.reporter_id = $2::uuid)
              AND ($3::timestamptz IS NULL OR (s.created_at, s.id) < ($3, $4::uuid))
            ORDER BY s.created_at DESC, s.id DESC LIMIT $5""",
        alert_id, reporter_id, before[0] if before else None, before[1] if before else None,
        limit,
    )
    return rows


# --- things other areas own -------------------------------------------------------------

async def select_pet_is_owned(conn: asyncpg.Connection, owner_id: str, pet_id: str
                              ) -> bool:
    """Whether the pet is the owner's."""
    found = await conn.fetchval(
        "SELECT 1 FROM pets WHERE id::text = $1 AND owner_id = $2", pet_id, owner_id
    )
    return found is not None
