"""Plain SQL over the ``uploads`` table (server/migrations/0004_uploads.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

_COLUMNS = """id::text AS id, owner_id::text AS owner_id, purpose, status, flow, content_type,
    size, received_bytes, width, height, incoming_key, multipart_id, part_size, object_key,
    thumb_key, expires_at, created_at, completed_at, moderated_at, moderation_reason, public"""


class UploadRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owner_id: str
    purpose: str
    status: str
    flow: str
    content_type: str
    size: int
    received_bytes: int
    width: int | None
    height: int | None
    incoming_key: str | None
    multipart_id: str | None
    part_size: int | None
    object_key: str | None
    thumb_key: str | None
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None
    moderated_at: datetime | None
    moderation_reason: str | None
    public: bool

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> UploadRow:
        return cls(**dict(record))

    def keys(self) -> list[str]:
        """Every object key this upload may have in the store."""
        return [k for k in (self.incoming_key, self.object_key, self.thumb_key) if k]


def _row(record: asyncpg.Record | None) -> UploadRow | None:
    return UploadRow.from_record(record) if record is not None else None


async def lock_owner(conn: asyncpg.Connection, owner_id: str) -> None:
    """Serialise one owner's quota check-and-insert (held until the transaction ends)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('uploads:' || $1::text, 0))", owner_id
    )


async def select_bytes_last_day(
    conn: asyncpg.Connection, owner_id: str
) -> tuple[int, datetime | None]:
    """Bytes the owner sent in the last 24 hours, and when the oldest of them was sent."""
    row = await conn.fetchrow(
        """SELECT coalesce(sum(received_bytes), 0)::bigint AS used, min(created_at) AS oldest
           FROM uploads WHERE owner_id = $1 AND created_at > now() - interval '1 day'""",
        owner_id,
    )
    assert row is not None
    return int(row["used"]), row["oldest"]


async def insert_upload(conn: asyncpg.Connection, **values: Any) -> UploadRow:
    names = list(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    record = await conn.fetchrow(
        f"INSERT INTO uploads ({', '.join(names)}) VALUES ({placeholders}) "
        f"RETURNING {_COLUMNS}",
        *values.values(),
    )
    assert record is not None
    return UploadRow.from_record(record)


async def select_upload(
    conn: asyncpg.Connection | asyncpg.Pool, upload_id: str
) -> UploadRow | None:
    return _row(await conn.fetchrow(f"SELECT {_COLUMNS} FROM uploads WHERE id = $1", upload_id))


async def update_upload_claim(
    conn: asyncpg.Connection, upload_id: str, owner_id: str, grace_s: int, processing_s: int
) -> UploadRow | None:
    """awaiting_upload → processing, if the owner's and not abandoned; with a fresh deadline."""
    return _row(await conn.fetchrow(
        f"""UPDATE uploads SET status = 'processing',
                   expires_at = now() + make_interval(secs => $4)
            WHERE id = $1 AND owner_id = $2 AND status = 'awaiting_upload'
              AND expires_at + make_interval(secs => $3) > now()
            RETURNING {_COLUMNS}""",
        upload_id, owner_id, grace_s, processing_s,
    ))


async def update_upload_release(
    conn: asyncpg.Connection | asyncpg.Pool, upload_id: str, expires_at: datetime
) -> None:
    """processing → awaiting_upload with its original presign deadline (the client may retry)."""
    await conn.execute(
        "UPDATE uploads SET status = 'awaiting_upload', expires_at = $2 "
        "WHERE id = $1 AND status = 'processing'",
        upload_id, expires_at,
    )


async def update_upload_processed(
    conn: asyncpg.Connection,
    upload_id: str,
    *,
    content_type: str,
    size: int,
    width: int,
    height: int,
    object_key: str,
    thumb_key: str,
) -> UploadRow:
    record = await conn.fetchrow(
        f"""UPDATE uploads SET status = 'pending', content_type = $2, size = $3, width = $4,
                   height = $5, object_key = $6, thumb_key = $7, incoming_key = NULL,
                   multipart_id = NULL, completed_at = now()
            WHERE id = $1 AND status = 'processing'
            RETURNING {_COLUMNS}""",
        upload_id, content_type, size, width, height, object_key, thumb_key,
    )
    if record is None:
        raise LookupError(f"upload {upload_id} is no longer processing")
    return UploadRow.from_record(record)


async def update_upload_moderation(
    conn: asyncpg.Connection, upload_id: str, status: str, reason: str | None
) -> UploadRow | None:
    """Set a moderation decision; None if the upload is unknown, unfinished or already so."""
    return _row(await conn.fetchrow(
        f"""UPDATE uploads SET status = $2, moderation_reason = $3, moderated_at = now()
            WHERE id = $1 AND status IN ('pending', 'approved', 'rejected') AND status <> $2
            RETURNING {_COLUMNS}""",
        upload_id, status, reason,
    ))


async def select_attachable_ids(
    conn: asyncpg.Connection, owner_id: str, ids: list[str], statuses: tuple[str, ...]
) -> set[str]:
    """Which of ``ids`` are uploads of ``owner_id`` in one of ``statuses``."""
    rows = await conn.fetch(
        "SELECT id::text AS id FROM uploads "
        "WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND status = ANY($3::text[])",
        ids, owner_id, list(statuses),
    )
    return {r["id"] for r in rows}


async def update_uploads_public(
    conn: asyncpg.Connection, owner_id: str, upload_ids: list[str], public: bool
) -> list[str]:
    """Mark the owner's finished uploads public (or not); returns the ids changed."""
    rows = await conn.fetch(
        """UPDATE uploads SET public = $3
           WHERE id = ANY($2::uuid[]) AND owner_id = $1
             AND status IN ('pending', 'approved', 'rejected')
           RETURNING id::text AS id""",
        owner_id, upload_ids, public,
    )
    return [r["id"] for r in rows]


async def delete_upload(conn: asyncpg.Connection | asyncpg.Pool, upload_id: str) -> None:
    await conn.execute("DELETE FROM uploads WHERE id = $1", upload_id)


async def select_abandoned_for_update(
    conn: asyncpg.Connection, grace_s: int, limit: int
) -> list[UploadRow]:
    """Unfinished uploads past deadline + grace, locked; rows another node holds are skipped."""
    records = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM uploads
            WHERE status IN ('awaiting_upload', 'processing')
              AND expires_at + make_interval(secs => $1) < now()
            ORDER BY expires_at LIMIT $2
            FOR UPDATE SKIP LOCKED""",
        grace_s, limit,
    )
    return [UploadRow.from_record(r) for r in records]


async def delete_uploads(conn: asyncpg.Connection, upload_ids: list[str]) -> None:
    await conn.execute("DELETE FROM uploads WHERE id = ANY($1::uuid[])", upload_ids)


async def select_finished_presigned_ids(conn: asyncpg.Connection, window_s: float,
                                        limit: int) -> list[str]:
    """Presigned uploads already processed whose form expired in the last ``window_s``
    seconds: a form posted again after ``complete`` may have left an object under their
    incoming key, which nothing reads (S3 cannot refuse a validly signed POST)."""
    rows = await conn.fetch(
        """SELECT id::text AS id FROM uploads
            WHERE flow = 'presigned' AND status IN ('pending', 'approved', 'rejected')
              AND expires_at < now() AND expires_at >= now() - make_interval(secs => $1)
            ORDER BY expires_at LIMIT $2""",
        window_s, limit,
    )
    return [r["id"] for r in rows]
