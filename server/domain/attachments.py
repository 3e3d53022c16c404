"""The one check for upload ids that a command attaches (pet photos, chat attachments).

An id is acceptable when an upload with that id exists and belongs to the user.
Anything else (not an id, unknown, someone else's) is ``not_found`` — the same
answer for all three, so another user's upload ids do not leak (PROTOCOL §4).
Rejected uploads and ones still being uploaded are refused as well: only
``pending`` (awaiting moderation) and ``approved`` uploads can be attached.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from server.domain.common import is_uuid
from server.domain.errors import BadRequest, NotFound

ATTACHABLE = ("pending", "approved")


async def check_owned_uploads(
    conn: asyncpg.Connection, user_id: str, ids: Sequence[str], field: str = "photo_ids"
) -> list[str]:
    """Return ``ids`` (in order) if every one is an attachable upload of ``user_id``."""
    if not ids:
        return []
    if len(set(ids)) != len(ids):
        raise BadRequest(f"{field}: the same upload twice")
    for i, value in enumerate(ids):
        if not is_uuid(value):
            raise NotFound(f"{field}[{i}]: no such upload")
    rows = await conn.fetch(
        "SELECT id::text AS id FROM uploads "
        "WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND status = ANY($3::text[])",
        list(ids), user_id, list(ATTACHABLE),
    )
    found = {r["id"] for r in rows}
    for i, value in enumerate(ids):
        if str(value).lower() not in found:
            raise NotFound(f"{field}[{i}]: no such upload")
    return [v.lower() for v in ids]
