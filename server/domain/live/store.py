"""Plain SQL for live streams (``live_streams``, migration 0011).

Visibility (PROTOCOL §10.3/§10.4): a stream whose host is banned, or who blocks or is
blocked by the viewer, does not exist for that viewer; queries that take a viewer say
so with ``hidden`` (or filter such streams out).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from server.domain.safety.store import not_blocked

STREAM_COLUMNS = (
    "s.id::text AS id, s.host_id::text AS host_id, hu.display_name AS host_name, "
    "hu.role AS host_role, s.pet_id::text AS pet_id, s.title, s.status, s.media, "
    "s.viewer_count, s.started_at, s.ended_at"
)


def _hidden(viewer_param: str) -> str:
    """A SQL boolean: the stream is invisible to the viewer (banned host, a block)."""
    return (f"(s.host_id <> {viewer_param} AND (hu.banned_at IS NOT NULL OR NOT "
            f"{not_blocked('s.host_id', viewer_param)}))")


async def select_pet_is_owned(conn: asyncpg.Connection, user_id: str, pet_id: str) -> bool:
    found = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pets WHERE id = $1 AND "
                                "owner_id = $2)", pet_id, user_id)
    return bool(found)


async def insert_stream(conn: asyncpg.Connection, *, host_id: str, pet_id: str | None,
                        title: str, media: str) -> asyncpg.Record:
    """Raises ``asyncpg.UniqueViolationError`` when the host is live already."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""WITH s AS (
                INSERT INTO live_streams (host_id, pet_id, title, media)
                VALUES ($1, $2, $3, $4) RETURNING *)
            SELECT {STREAM_COLUMNS} FROM s JOIN users hu ON hu.id = s.host_id""",
        host_id, pet_id, title, media,
    )
    return row


async def select_stream(conn: asyncpg.Connection | asyncpg.Pool, stream_id: str,
                        viewer_id: str) -> asyncpg.Record | None:
    """The stream, with ``hidden`` for this viewer; None if there is no such id."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {STREAM_COLUMNS}, {_hidden('$2')} AS hidden
            FROM live_streams s JOIN users hu ON hu.id = s.host_id
            WHERE s.id = $1""",
        stream_id, viewer_id,
    )
    return row


async def select_live_streams(conn: asyncpg.Connection | asyncpg.Pool, viewer_id: str, *,
                              after: tuple[int, str] | None, limit: int
                              ) -> list[asyncpg.Record]:
    """Live streams the viewer may see, most viewers first (keyset after ``after``)."""
    args: list[object] = [viewer_id, limit]
    keyset = ""
    if after is not None:
        keyset = "AND (s.viewer_count, s.id) < ($3, $4::uuid)"
        args += [after[0], after[1]]
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {STREAM_COLUMNS}
            FROM live_streams s JOIN users hu ON hu.id = s.host_id
            WHERE s.status = 'live' AND NOT {_hidden('$1')} {keyset}
            ORDER BY s.viewer_count DESC, s.id DESC
            LIMIT $2""",
        *args,
    )
    return rows


async def select_room_context(conn: asyncpg.Connection | asyncpg.Pool, stream_id: str,
                              user_id: str) -> asyncpg.Record | None:
    """What live.chat/react/signal need in one round trip: the stream's host, status,
    media and visibility, the caller's public profile, and every user the caller blocks
    or is blocked by (their sockets do not get the caller's chat)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT s.host_id::text AS host_id, s.status, s.media, {_hidden('$2')} AS hidden,
                   me.display_name, me.role,
                   ARRAY(SELECT blocked_id::text FROM user_blocks WHERE blocker_id = $2
                         UNION
                         SELECT blocker_id::text FROM user_blocks WHERE blocked_id = $2
                        ) AS blocks
            FROM live_streams s JOIN users hu ON hu.id = s.host_id
                 JOIN users me ON me.id = $2
            WHERE s.id = $1""",
        stream_id, user_id,
    )
    return row


async def update_stream_ended(conn: asyncpg.Connection | asyncpg.Pool, stream_id: str,
                              reason: str, *, media: str | None = None) -> bool:
    """End a live stream; False if it was not live (another node or command won).
    ``media``: only a stream of that media kind."""
    status = await conn.execute(
        """UPDATE live_streams SET status = 'ended', ended_at = now(), ended_reason = $2,
                  viewer_count = 0, host_away_since = NULL
           WHERE id = $1 AND status = 'live' AND ($3::text IS NULL OR media = $3)""",
        stream_id, reason, media,
    )
    return bool(status == "UPDATE 1")


async def update_streams_of_host_ended(conn: asyncpg.Connection, host_id: str, reason: str
                                       ) -> list[str]:
    """End the host's live stream (there is at most one); the ids ended."""
    rows = await conn.fetch(
        """UPDATE live_streams SET status = 'ended', ended_at = now(), ended_reason = $2,
                  viewer_count = 0, host_away_since = NULL
           WHERE host_id = $1 AND status = 'live' RETURNING id::text AS id""",
        host_id, reason,
    )
    return [r["id"] for r in rows]


async def select_live_for_sweep(conn: asyncpg.Connection, *, after: str | None, limit: int
                                ) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id::text AS id, host_id::text AS host_id, viewer_count,
                  host_away_since IS NOT NULL AS away
           FROM live_streams WHERE status = 'live' AND ($1::uuid IS NULL OR id > $1::uuid)
           ORDER BY id LIMIT $2""",
        after, limit,
    )
    return rows


async def update_host_away(conn: asyncpg.Connection, *, away: Sequence[str],
                           back: Sequence[str]) -> None:
    """Start the grace clock of streams whose host has no socket (keeping an earlier
    start), stop it for streams whose host is back."""
    if away:
        await conn.execute(
            """UPDATE live_streams SET host_away_since = now()
               WHERE id = ANY($1::uuid[]) AND status = 'live' AND host_away_since IS NULL""",
            list(away),
        )
    if back:
        await conn.execute(
            """UPDATE live_streams SET host_away_since = NULL
               WHERE id = ANY($1::uuid[]) AND host_away_since IS NOT NULL""",
            list(back),
        )


async def update_host_presence(conn: asyncpg.Connection | asyncpg.Pool, host_id: str,
                               online: bool) -> None:
    """The host's first socket opened (stop the clock) or last one closed (start it)."""
    if online:
        await conn.execute(
            """UPDATE live_streams SET host_away_since = NULL
               WHERE host_id = $1 AND status = 'live' AND host_away_since IS NOT NULL""",
            host_id,
        )
    else:
        await conn.execute(
            """UPDATE live_streams SET host_away_since = now()
               WHERE host_id = $1 AND status = 'live' AND host_away_since IS NULL""",
            host_id,
        )


async def update_ended_after_grace(conn: asyncpg.Connection, grace_s: float) -> list[str]:
    """End every stream whose host has been away longer than the grace; their ids.
    Each is ended by exactly one node (the row's update is the arbiter)."""
    rows = await conn.fetch(
        """UPDATE live_streams SET status = 'ended', ended_at = now(),
                  ended_reason = 'host_gone', viewer_count = 0, host_away_since = NULL
           WHERE status = 'live' AND host_away_since < now() - make_interval(secs => $1)
           RETURNING id::text AS id""",
        grace_s,
    )
    return [r["id"] for r in rows]


async def update_viewer_counts(conn: asyncpg.Connection, ids: Sequence[str],
                               counts: Sequence[int]) -> None:
    if not ids:
        return
    await conn.execute(
        """UPDATE live_streams s SET viewer_count = c.n
           FROM unnest($1::uuid[], $2::int[]) AS c(id, n)
           WHERE s.id = c.id AND s.status = 'live' AND s.viewer_count <> c.n""",
        list(ids), list(counts),
    )


async def select_host_id(conn: asyncpg.Connection | asyncpg.Pool, stream_id: str
                         ) -> str | None:
    host: str | None = await conn.fetchval(
        "SELECT host_id::text FROM live_streams WHERE id = $1", stream_id)
    return host
