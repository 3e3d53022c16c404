"""Plain SQL for posts, likes, comments and their counters (``0008_community.sql``).

A post is visible to a viewer when it is not deleted, its author is not banned (or is the
viewer) and there is no block between author and viewer (either way). Feed pages are a
keyset on ``(created_at, id)`` descending; every page query is built by a ``*_page_sql``
function so that tests and the bench can ``EXPLAIN`` exactly what runs.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import asyncpg

from server.domain.safety.store import not_blocked

EARTH_RADIUS_M = 6_371_008.8
SHARDS = 8
MAX_CELLS = 256
"""Above this many 1 x 1 degree squares (a radius of several hundred km, or one reaching a pole)
a nearby page walks the time index and filters by distance instead."""

Keyset = tuple[datetime, str]

# $1 is always the viewer.
VISIBLE = (f"p.deleted_at IS NULL AND (u.banned_at IS NULL OR p.author_id = $1) "
           f"AND {not_blocked('p.author_id', '$1')}")

_DETAILS = """p.id::text AS id, p.author_id::text AS author_id, u.display_name AS author_name,
    u.role AS author_role, p.body, p.photo_ids::text[] AS photo_ids,
    CASE WHEN p.author_id = $1 THEN p.lat ELSE p.pub_lat END AS lat,
    CASE WHEN p.author_id = $1 THEN p.lng ELSE p.pub_lng END AS lng,
    p.created_at, p.edited_at,
    coalesce(k.likes, 0) AS like_count, coalesce(k.comments, 0) AS comment_count,
    EXISTS (SELECT 1 FROM post_likes l
            WHERE l.post_id = p.id AND l.user_id = $1 AND l.active) AS liked_by_me"""
_COUNTS = """LEFT JOIN LATERAL (SELECT sum(c.likes) AS likes, sum(c.comments) AS comments
                            FROM post_counters c WHERE c.post_id = p.id) k ON true"""


def _with_details(page_sql: str) -> str:
    """The page's posts with author, counts and the viewer's like, newest first."""
    return f"""SELECT {_DETAILS}
               FROM ({page_sql}) pg
               JOIN posts p ON p.id = pg.id
               JOIN users u ON u.id = p.author_id
               {_COUNTS}
               ORDER BY p.created_at DESC, p.id DESC"""


def shard_of(user_id: str) -> str:
    """SQL for the counter shard of a user id expression."""
    return f"(hashtext({user_id}::text) & {SHARDS - 1})"


# --- feed pages -------------------------------------------------------------------------
# Parameters: $1 viewer, $2 limit, then the scope's, then (after a cursor) the keyset.
# The keyset is left out of the first page's SQL rather than written as "$n IS NULL OR
# …": a generic plan could not use such a condition as an index bound.

def _keyset(first_param: int | None, direction: str = "<") -> str:
    if first_param is None:
        return "true"
    n = first_param
    return f"(p.created_at, p.id) {direction} (${n}::timestamptz, ${n + 1}::uuid)"


def recent_page_sql(keyset: bool) -> str:
    return f"""SELECT p.id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id
               WHERE {VISIBLE} AND {_keyset(3 if keyset else None)}
               ORDER BY p.created_at DESC, p.id DESC LIMIT $2"""


def author_page_sql(keyset: bool) -> str:
    """$3: the author."""
    return f"""SELECT p.id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id
               WHERE p.author_id = $3 AND {VISIBLE} AND {_keyset(4 if keyset else None)}
               ORDER BY p.created_at DESC, p.id DESC LIMIT $2"""


def nearby_page_sql(keyset: bool, by_cells: bool) -> str:
    """$3, $4 the centre, $5 the radius in metres, $6 the squares (``cells_of_cap``).

    With squares: one time-ordered index range per square (LIMIT each), then the merge.
    Without (too many squares): the time index with a distance filter."""
    near = "lf_distance_m($3::float8, $4::float8, p.pub_lat, p.pub_lng) <= $5::float8"
    after = _keyset(7 if keyset else None)
    if not by_cells:
        return f"""SELECT p.id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id
                   WHERE p.cell IS NOT NULL AND cardinality($6::int[]) = 0 AND {near}
                     AND {VISIBLE} AND {after}
                   ORDER BY p.created_at DESC, p.id DESC LIMIT $2"""
    return f"""SELECT s.id, s.created_at FROM unnest($6::int[]) AS sq(cell)
               CROSS JOIN LATERAL (
                   SELECT p.id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id
                   WHERE p.cell = sq.cell AND {near} AND {VISIBLE} AND {after}
                   ORDER BY p.created_at DESC, p.id DESC LIMIT $2) s
               ORDER BY s.created_at DESC, s.id DESC LIMIT $2"""


def cells_of_cap(lat: float, lng: float, radius_m: float, max_cells: int = MAX_CELLS
                 ) -> list[int] | None:
    """The ``geo_cell`` squares that the circle's latitude/longitude bounding box touches
    (as ``lf_cap_box`` computes it), or None when there would be more than ``max_cells``."""
    d = math.degrees(radius_m / EARTH_RADIUS_M) * 1.000001 + 1e-9
    low, high = max(lat - d, -90.0), min(lat + d, 90.0)
    rows = range(math.floor(low) + 90, math.floor(high) + 90 + 1)
    if abs(lat) + d >= 90:
        cols: list[int] = list(range(360))
    else:
        half = math.degrees(math.asin(min(1.0, math.sin(math.radians(d))
                                          / math.cos(math.radians(lat)))))
        if half >= 180:
            cols = list(range(360))
        else:
            cols = sorted({(c + 180) % 360
                           for c in range(math.floor(lng - half), math.floor(lng + half) + 1)})
    if len(rows) * len(cols) > max_cells:
        return None
    return [r * 360 + c for r in rows for c in cols]


def page_args(viewer: str, limit: int, scope_args: list[Any], after: Keyset | None
              ) -> list[Any]:
    return [viewer, limit, *scope_args, *(after or ())]


async def select_feed(conn: asyncpg.Connection, page_sql: str, args: list[Any]
                      ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(_with_details(page_sql), *args)
    return rows


# --- single posts ---------------------------------------------------------------------------

async def select_visible_post(conn: asyncpg.Connection, post_id: str, viewer: str
                              ) -> asyncpg.Record | None:
    """The post as ``viewer`` sees it, or None if they cannot see it."""
    page = f"""SELECT p.id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id
               WHERE p.id = $2::uuid AND {VISIBLE}"""
    row: asyncpg.Record | None = await conn.fetchrow(_with_details(page), viewer, post_id)
    return row


async def select_post_state(conn: asyncpg.Connection, post_id: str, viewer: str
                            ) -> asyncpg.Record | None:
    """A post that is not deleted, whoever may see it: its author and whether ``viewer``
    may see it (for permission checks)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT p.id::text AS id, p.author_id::text AS author_id,
                   ({VISIBLE}) AS visible
            FROM posts p JOIN users u ON u.id = p.author_id
            WHERE p.id = $2 AND p.deleted_at IS NULL""",
        viewer, post_id,
    )
    return row


async def insert_post(conn: asyncpg.Connection, *, author_id: str, body: str,
                      photo_ids: list[str], lat: float | None, lng: float | None) -> str:
    post_id: str = await conn.fetchval(
        """INSERT INTO posts (author_id, body, photo_ids, lat, lng)
           VALUES ($1, $2, $3::uuid[], $4, $5) RETURNING id::text""",
        author_id, body, photo_ids, lat, lng,
    )
    return post_id


async def update_post_deleted(conn: asyncpg.Connection, post_id: str, by: str) -> bool:
    status: str = await conn.execute(
        "UPDATE posts SET deleted_at = now(), deleted_by = $2 "
        "WHERE id = $1 AND deleted_at IS NULL",
        post_id, by,
    )
    return status.endswith(" 1")


# --- likes and counters ----------------------------------------------------------------------

async def update_like_on(conn: asyncpg.Connection, post_id: str, user_id: str) -> str:
    """Record the user's like: ``first`` (never liked before), ``again`` (liked after an
    unlike) or ``same`` (already liked: nothing changed)."""
    again = await conn.fetchval(
        """UPDATE post_likes SET active = true, updated_at = now()
           WHERE post_id = $1 AND user_id = $2 AND NOT active RETURNING true""",
        post_id, user_id,
    )
    if again:
        return "again"
    first = await conn.fetchval(
        """INSERT INTO post_likes (post_id, user_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        post_id, user_id,
    )
    return "first" if first else "same"


async def update_like_off(conn: asyncpg.Connection, post_id: str, user_id: str) -> bool:
    """Withdraw the user's like; False if there was none."""
    done = await conn.fetchval(
        """UPDATE post_likes SET active = false, updated_at = now()
           WHERE post_id = $1 AND user_id = $2 AND active RETURNING true""",
        post_id, user_id,
    )
    return bool(done)


async def add_to_counter(conn: asyncpg.Connection, post_id: str, user_id: str, *,
                         likes: int = 0, comments: int = 0) -> None:
    """Add to the post's counter row of ``user_id``'s shard (a +1 may create it; a -1
    always follows a +1 of the same user, so its row exists)."""
    if likes > 0 or comments > 0:
        await conn.execute(
            f"""INSERT INTO post_counters (post_id, shard, likes, comments)
                VALUES ($1, {shard_of('$2')}, $3, $4)
                ON CONFLICT (post_id, shard) DO UPDATE
                SET likes = post_counters.likes + excluded.likes,
                    comments = post_counters.comments + excluded.comments""",
            post_id, user_id, likes, comments,
        )
    else:
        await conn.execute(
            f"""UPDATE post_counters SET likes = likes + $3, comments = comments + $4
                WHERE post_id = $1 AND shard = {shard_of('$2')}""",
            post_id, user_id, likes, comments,
        )


# --- comments ------------------------------------------------------------------------------

COMMENT_COLUMNS = """c.id::text AS id, c.post_id::text AS post_id,
    c.author_id::text AS author_id, cu.display_name AS author_name, cu.role AS author_role,
    c.body, c.created_at"""
VISIBLE_COMMENT = (f"c.deleted_at IS NULL AND (cu.banned_at IS NULL OR c.author_id = $1) "
                   f"AND {not_blocked('c.author_id', '$1')}")


async def insert_comment(conn: asyncpg.Connection, *, post_id: str, author_id: str, body: str
                         ) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH c AS (INSERT INTO post_comments (post_id, author_id, body)
                       VALUES ($2, $1, $3) RETURNING *)
            SELECT {COMMENT_COLUMNS} FROM c JOIN users cu ON cu.id = c.author_id""",
        author_id, post_id, body,
    )
    return row


def comments_page_sql(keyset: bool) -> str:
    """$1 viewer, $2 limit, $3 the post, then the keyset (created_at, id) ascending."""
    after = "(c.created_at, c.id) > ($4::timestamptz, $5::uuid)" if keyset else "true"
    return f"""SELECT {COMMENT_COLUMNS} FROM post_comments c
               JOIN users cu ON cu.id = c.author_id
               WHERE c.post_id = $3 AND {VISIBLE_COMMENT} AND {after}
               ORDER BY c.created_at, c.id LIMIT $2"""


async def select_comments(conn: asyncpg.Connection, viewer: str, post_id: str, limit: int,
                          after: Keyset | None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        comments_page_sql(after is not None), *page_args(viewer, limit, [post_id], after))
    return rows


async def select_comment_state(conn: asyncpg.Connection, comment_id: str, viewer: str, *,
                               for_update: bool = False) -> asyncpg.Record | None:
    """A comment that is not deleted on a post that is not deleted, with both authors and
    whether ``viewer`` may see it (the post and the comment); locked for a change if
    ``for_update``."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT c.id::text AS id, c.author_id::text AS author_id,
                   p.id::text AS post_id, p.author_id::text AS post_author_id,
                   ({VISIBLE} AND {VISIBLE_COMMENT}) AS visible
            FROM post_comments c
            JOIN users cu ON cu.id = c.author_id
            JOIN posts p ON p.id = c.post_id
            JOIN users u ON u.id = p.author_id
            WHERE c.id = $2 AND c.deleted_at IS NULL AND p.deleted_at IS NULL"""
        + (" FOR UPDATE OF c" if for_update else ""),
        viewer, comment_id,
    )
    return row


async def update_comment_deleted(conn: asyncpg.Connection, comment_id: str, by: str) -> bool:
    status: str = await conn.execute(
        "UPDATE post_comments SET deleted_at = now(), deleted_by = $2 "
        "WHERE id = $1 AND deleted_at IS NULL",
        comment_id, by,
    )
    return status.endswith(" 1")


async def select_display_name(conn: asyncpg.Connection, user_id: str) -> str:
    name: str | None = await conn.fetchval("SELECT display_name FROM users WHERE id = $1",
                                           user_id)
    return name or "Someone"
