"""What other areas do with uploads: attach them (pet photos, chat attachments, posters,
listings) and make them public.

An id is acceptable when an upload with that id exists and belongs to the user.
Anything else (not an id, unknown, someone else's) is ``not_found`` — the same
answer for all three, so another user's upload ids do not leak (PROTOCOL §4).
Rejected uploads and ones still being uploaded are refused as well: only
``pending`` (awaiting moderation) and ``approved`` uploads can be attached.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from server.domain.uploads import store
from server.errors import BadRequest, NotFound
from server.ids import parse_id

ATTACHABLE = ("pending", "approved")


async def check_owned_uploads(
    conn: asyncpg.Connection, user_id: str, ids: Sequence[str], field: str = "photo_ids"
) -> list[str]:
    """Return ``ids`` (in order, canonical) if every one is an attachable upload of
    ``user_id``."""
    if not ids:
        return []
    if len(set(ids)) != len(ids):
        raise BadRequest(f"{field}: the same upload twice")
    parsed: list[str] = []
    for i, value in enumerate(ids):
        one = parse_id(value)
        if one is None:
            raise NotFound(f"{field}[{i}]: no such upload")
        parsed.append(one)
    found = await store.select_attachable_ids(conn, user_id, parsed, ATTACHABLE)
    for i, value in enumerate(parsed):
        if value not in found:
            raise NotFound(f"{field}[{i}]: no such upload")
    return parsed


async def mark_public(
    conn: asyncpg.Connection, owner_id: str, upload_ids: list[str], public: bool = True
) -> list[str]:
    """For features that attach uploads to public things (pet profiles, lost posters,
    adoption listings): makes the owner's approved uploads visible to everyone.
    Returns the ids changed; ids that are not the owner's (or not ids) are ignored."""
    ids = [p for p in (parse_id(i) for i in upload_ids) if p is not None]
    return await store.update_uploads_public(conn, owner_id, ids, public)
