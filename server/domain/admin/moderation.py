"""What the moderation queue knows about each kind of target: how to preview it and how to
apply a decision to it. ``KINDS`` maps a kind to its ``TargetKind`` — its ``preview`` and
its ``decide``; the items, their paging, the locking, the report bookkeeping, the audit
entry and ``conflict`` for a second decision are shared (``AdminService.decide``).

``decide`` runs inside the decision's transaction after the item was resolved, so the
whole decision commits or none of it does. What must happen only after commit (closing a
banned user's sockets, closing a stream's room on every node) goes into
``Decision.after_commit``.

Removing content: ``reject`` removes the target the way its own area removes it (a post
or comment deleted, a listing withdrawn and removed, a live stream ended, a message
emptied) and, when this decision removed something, tells its author with a
``moderation.removed`` notification. Something its author had already deleted (or a
stream that had already ended) is not removed again and nobody is told; the item still
closes. ``approve`` keeps the content.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import asyncpg

from protocol.chat import ChatMessageEvent
from server.domain.adoption import store as adoption_store
from server.domain.adoption.service import LIVE as LIVE_APPLICATIONS
from server.domain.adoption.service import tell_applicants
from server.domain.chat import store as chat_store
from server.domain.chat.service import message_from_row
from server.domain.community import store as community_store
from server.domain.notifications.service import notify
from server.domain.uploads.moderation import moderate_upload
from server.errors import BadRequest
from server.realtime.presence import Presence
from server.realtime.stream import Transaction
from server.resources.storage import Storage

Preview = dict[str, Any]
AfterCommit = Callable[[], Awaitable[None]]

ENDED_BY_MODERATION = "moderation"
"""``live_streams.ended_reason`` of a stream ended by a decision or by its host's ban."""


class Accounts(Protocol):
    """Bans, as the auth service does them (the composition root passes ``AuthService``)."""

    async def ban_in(self, conn: asyncpg.Connection, user_id: str, reason: str | None
                     ) -> bool: ...

    async def unban_in(self, conn: asyncpg.Connection, user_id: str) -> bool: ...

    async def close_banned_sockets(self, user_id: str) -> None: ...


class Streams(Protocol):
    """Ending live streams from an admin transaction (the root passes ``LiveService``)."""

    async def end_in(self, conn: asyncpg.Connection, stream_id: str, reason: str) -> bool: ...

    async def end_hosted_in(self, conn: asyncpg.Connection, host_id: str, reason: str
                            ) -> list[str]: ...

    async def ended(self, stream_id: str, reason: str) -> None: ...


@dataclass
class Context:
    """What previews and decisions may use."""

    storage: Storage
    presence: Presence
    accounts: Accounts
    live: Streams
    url_ttl_s: int


@dataclass
class Decision:
    """One decision being applied: the resolved item, the verdict, and the transaction."""

    tx: Transaction
    ctx: Context
    actor_id: str
    item_id: str
    kind: str
    target_id: str
    verdict: Literal["approve", "reject"]
    reason: str | None
    reasons: list[str]
    """The item's report reasons."""
    after_commit: list[AfterCommit] = field(default_factory=list)

    def removal_reason(self) -> str:
        """What to tell an author or a banned user: the admin's reason, else the reports'."""
        if self.reason:
            return self.reason
        if self.reasons:
            return "reported for " + ", ".join(r.replace("_", " ") for r in self.reasons)
        return "breaking the community rules"

    async def tell_author(self, author_id: str, what: str, **data: Any) -> None:
        """The ``moderation.removed`` notification (inbox row, durable event, push)."""
        await notify(self.tx, self.ctx.presence, [author_id], kind="moderation.removed",
                     title=f"Your {what} was removed",
                     body=f"A moderator removed your {what}: {self.removal_reason()}",
                     data={"kind": self.kind, "target_id": self.target_id,
                           "item_id": self.item_id, **data})


PreviewFn = Callable[[asyncpg.Connection, Context, Sequence[str]], Awaitable[dict[str, Preview]]]
DecideFn = Callable[[Decision], Awaitable[dict[str, Any]]]
"""Applies the decision; returns what the audit entry's ``data`` should add."""


@dataclass(frozen=True)
class TargetKind:
    preview: PreviewFn
    decide: DecideFn


async def ban_in(conn: asyncpg.Connection, ctx: Context, user_id: str, reason: str
                 ) -> tuple[bool, list[str], list[AfterCommit]]:
    """Ban inside the caller's transaction (``admin.ban`` and a rejected user): the account
    (sessions and refresh families revoked) and, at once, the user's live stream. Returns
    whether there was such a user, the streams ended, and what to run after the commit:
    each stream's room closes with ``live.ended`` on every node, then the user's sockets
    close 4003 on every node."""
    if not await ctx.accounts.ban_in(conn, user_id, reason):
        return False, [], []
    ended = await ctx.live.end_hosted_in(conn, user_id, ENDED_BY_MODERATION)
    steps: list[AfterCommit] = [functools.partial(ctx.live.ended, sid, ENDED_BY_MODERATION)
                                for sid in ended]
    steps.append(functools.partial(ctx.accounts.close_banned_sockets, user_id))
    return True, ended, steps


async def _photos(conn: asyncpg.Connection, ctx: Context, ids: Iterable[str]
                  ) -> dict[str, Preview]:
    """Each photo's status and a short-lived signed URL of its thumbnail (else the image),
    whatever its state: admins see what they judge."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        """SELECT id::text AS id, status, coalesce(thumb_key, object_key) AS key
           FROM uploads WHERE id = ANY($1::uuid[])""",
        wanted,
    )
    out: dict[str, Preview] = {}
    for r in rows:
        photo: Preview = {"id": r["id"], "status": r["status"]}
        if r["key"]:
            photo["url"] = await ctx.storage.download_url(r["key"], ctx.url_ttl_s)
        out[r["id"]] = photo
    return out


def _photo_list(photo_ids: Sequence[str], photos: dict[str, Preview]) -> list[Preview]:
    return [photos.get(p, {"id": p, "status": "gone"}) for p in photo_ids]


# --- uploads ---------------------------------------------------------------------------------

async def _preview_uploads(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                           ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT id::text AS id, owner_id::text AS owner_id, purpose, status, content_type,
                  size, width, height, object_key, thumb_key
           FROM uploads WHERE id = ANY($1::uuid[])""",
        list(ids),
    )
    out: dict[str, Preview] = {}
    for r in rows:
        preview: Preview = {k: r[k] for k in ("owner_id", "purpose", "status", "content_type",
                                              "size", "width", "height")}
        # Admins see the image whatever its state: short-lived signed URLs.
        if r["object_key"]:
            preview["url"] = await ctx.storage.download_url(r["object_key"], ctx.url_ttl_s)
        if r["thumb_key"]:
            preview["thumbnail_url"] = await ctx.storage.download_url(r["thumb_key"],
                                                                      ctx.url_ttl_s)
        out[r["id"]] = preview
    return out


async def _decide_upload(d: Decision) -> dict[str, Any]:
    status: Literal["approved", "rejected"] = (
        "approved" if d.verdict == "approve" else "rejected")
    row = await moderate_upload(d.tx, d.target_id, status, d.reason)
    if d.verdict == "approve":
        return {"changed": row is not None}
    conn = d.tx.conn
    owner = await conn.fetchval("SELECT owner_id FROM uploads WHERE id = $1", d.target_id)
    if owner is None:
        return {"changed": False}
    # Only the owner's own uploads can be attached (check_owned_uploads), so the owner's
    # things are all that can hold the photo; each lookup is on an owner index.
    pets = await conn.execute(
        """UPDATE pets SET photo_ids = array_remove(photo_ids, $1::uuid), updated_at = now()
           WHERE owner_id = $2 AND $1::uuid = ANY (photo_ids)""", d.target_id, owner)
    alerts = await conn.execute(
        """UPDATE lost_alerts SET photo_ids = array_remove(photo_ids, $1::text)
           WHERE owner_id = $2 AND $1::text = ANY (photo_ids)""", d.target_id, owner)
    sightings = await conn.execute(
        """UPDATE lost_sightings SET photo_ids = array_remove(photo_ids, $1::text)
           WHERE reporter_id = $2 AND $1::text = ANY (photo_ids)""", d.target_id, owner)
    # Deleted posts too: nothing keeps a rejected photo. edited_at stays (the author did
    # not edit the post).
    posts = await conn.execute(
        """UPDATE posts SET photo_ids = array_remove(photo_ids, $1::uuid)
           WHERE author_id = $2 AND $1::uuid = ANY (photo_ids)""", d.target_id, owner)
    listings = await conn.execute(
        """UPDATE adoption_listings SET photo_ids = array_remove(photo_ids, $1::uuid),
                  updated_at = clock_timestamp()
           WHERE lister_id = $2 AND $1::uuid = ANY (photo_ids)""", d.target_id, owner)
    return {"changed": row is not None, "detached_from": {
        "pets": _count(pets), "lost_alerts": _count(alerts), "lost_sightings": _count(sightings),
        "posts": _count(posts), "listings": _count(listings),
    }}


def _count(status: str) -> int:
    return int(status.split()[-1])


# --- users -------------------------------------------------------------------------------------

async def _preview_users(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                         ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT id::text AS id, display_name, email, role, created_at, banned_at
           FROM users WHERE id = ANY($1::uuid[])""",
        list(ids),
    )
    return {r["id"]: {"display_name": r["display_name"], "email": r["email"],
                      "role": r["role"], "created_at": r["created_at"],
                      "banned": r["banned_at"] is not None} for r in rows}


async def _decide_user(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    if d.target_id == d.actor_id:
        raise BadRequest("item_id: you cannot ban yourself")
    banned, ended, steps = await ban_in(d.tx.conn, d.ctx, d.target_id,
                                        d.removal_reason()[:500])
    d.after_commit += steps
    return {"banned": banned, "streams_ended": ended}


# --- chat messages -----------------------------------------------------------------------------

async def _preview_messages(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                            ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT id::text AS id, conversation_id::text AS conversation_id,
                  sender_id::text AS sender_id, body, attachment_ids::text[] AS attachment_ids,
                  created_at, deleted_at
           FROM messages WHERE id = ANY($1::uuid[])""",
        list(ids),
    )
    return {r["id"]: {"conversation_id": r["conversation_id"], "sender_id": r["sender_id"],
                      "body": r["body"], "attachment_ids": list(r["attachment_ids"]),
                      "created_at": r["created_at"], "deleted": r["deleted_at"] is not None}
            for r in rows}


async def _decide_message(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    conn = d.tx.conn
    row = await conn.fetchrow(
        """SELECT m.sender_id::text AS sender_id, m.conversation_id::text AS conversation_id,
                  m.deleted_at,
                  (SELECT array_agg(cm.user_id::text ORDER BY cm.user_id)
                   FROM conversation_members cm WHERE cm.conversation_id = m.conversation_id)
                      AS member_ids
           FROM messages m WHERE m.id = $1 FOR UPDATE OF m""",
        d.target_id,
    )
    if row is None:
        return {"removed": False}
    if row["deleted_at"] is not None:  # its sender deleted it first
        return {"removed": False, "author_id": row["sender_id"]}
    # As chat.delete does: the body goes, the message stays in history, every member's
    # clients learn of it through the durable chat.message event.
    updated = await chat_store.update_message_deleted(conn, d.target_id)
    await d.tx.append(row["member_ids"] or [],
                      ChatMessageEvent(seq=0, message=message_from_row(updated)))
    await d.tell_author(row["sender_id"], "message",
                        conversation_id=row["conversation_id"])
    return {"removed": True, "author_id": row["sender_id"]}


# --- posts and comments -------------------------------------------------------------------

async def _preview_posts(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                         ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT p.id::text AS id, p.author_id::text AS author_id, u.display_name, p.body,
                  p.photo_ids::text[] AS photo_ids, p.created_at, p.edited_at, p.deleted_at
           FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = ANY($1::uuid[])""",
        list(ids),
    )
    photos = await _photos(conn, ctx, (p for r in rows for p in r["photo_ids"]))
    return {r["id"]: {"author_id": r["author_id"], "author_name": r["display_name"],
                      "body": r["body"], "photos": _photo_list(r["photo_ids"], photos),
                      "created_at": r["created_at"], "edited_at": r["edited_at"],
                      "deleted": r["deleted_at"] is not None} for r in rows}


async def _decide_post(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    conn = d.tx.conn
    author = await conn.fetchval("SELECT author_id::text FROM posts WHERE id = $1 FOR UPDATE",
                                 d.target_id)
    if author is None:
        return {"removed": False}
    # As posts.delete by an admin: gone (not_found) for everyone, its author included.
    removed = await community_store.update_post_deleted(conn, d.target_id, d.actor_id)
    if removed:
        await d.tell_author(author, "post")
    return {"removed": removed, "author_id": author}


async def _preview_comments(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                            ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT c.id::text AS id, c.post_id::text AS post_id, c.author_id::text AS author_id,
                  u.display_name, c.body, c.created_at, c.deleted_at
           FROM post_comments c JOIN users u ON u.id = c.author_id
           WHERE c.id = ANY($1::uuid[])""",
        list(ids),
    )
    return {r["id"]: {"post_id": r["post_id"], "author_id": r["author_id"],
                      "author_name": r["display_name"], "body": r["body"],
                      "created_at": r["created_at"], "deleted": r["deleted_at"] is not None}
            for r in rows}


async def _decide_comment(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    conn = d.tx.conn
    row = await conn.fetchrow(
        """SELECT author_id::text AS author_id, post_id::text AS post_id
           FROM post_comments WHERE id = $1 FOR UPDATE""",
        d.target_id,
    )
    if row is None:
        return {"removed": False}
    # As posts.delete_comment: deleted, and the post's comment_count one lower.
    removed = await community_store.update_comment_deleted(conn, d.target_id, d.actor_id)
    if removed:
        await community_store.add_to_counter(conn, row["post_id"], row["author_id"],
                                             comments=-1)
        await d.tell_author(row["author_id"], "comment", post_id=row["post_id"])
    return {"removed": removed, "author_id": row["author_id"]}


# --- adoption listings -----------------------------------------------------------------------

async def _preview_listings(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                            ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT l.id::text AS id, l.lister_id::text AS lister_id, u.display_name, l.title,
                  l.description, l.status, l.pet_id::text AS pet_id, p.name AS pet_name,
                  l.photo_ids::text[] AS photo_ids, l.created_at, l.removed_at
           FROM adoption_listings l JOIN users u ON u.id = l.lister_id
                JOIN pets p ON p.id = l.pet_id
           WHERE l.id = ANY($1::uuid[])""",
        list(ids),
    )
    photos = await _photos(conn, ctx, (p for r in rows for p in r["photo_ids"]))
    return {r["id"]: {"lister_id": r["lister_id"], "lister_name": r["display_name"],
                      "title": r["title"], "description": r["description"],
                      "status": r["status"], "pet_id": r["pet_id"], "pet_name": r["pet_name"],
                      "photos": _photo_list(r["photo_ids"], photos),
                      "created_at": r["created_at"], "removed": r["removed_at"] is not None}
            for r in rows}


async def _decide_listing(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    conn = d.tx.conn
    row = await adoption_store.select_listing_for_removal(conn, d.target_id)
    if row is None or row["removed"]:
        return {"removed": False}
    # As the lister withdrawing it: live applications rejected, each applicant told
    # (adoption.decision + notification); then removed: not_found for all but the lister.
    rejected: list[asyncpg.Record] = []
    if row["status"] in ("available", "pending"):
        rejected = await adoption_store.update_applications_rejected(
            conn, d.target_id, list(LIVE_APPLICATIONS))
    await adoption_store.update_listing_removed(conn, d.target_id)
    await tell_applicants(d.tx, d.ctx.presence, rejected, row["title"])
    await d.tell_author(row["lister_id"], "adoption listing")
    return {"removed": True, "author_id": row["lister_id"], "status_was": row["status"],
            "applications_rejected": len(rejected)}


# --- live streams ----------------------------------------------------------------------------

async def _preview_streams(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                           ) -> dict[str, Preview]:
    rows = await conn.fetch(
        """SELECT s.id::text AS id, s.host_id::text AS host_id, u.display_name, s.title,
                  s.status, s.media, s.viewer_count, s.started_at, s.ended_at, s.ended_reason
           FROM live_streams s JOIN users u ON u.id = s.host_id
           WHERE s.id = ANY($1::uuid[])""",
        list(ids),
    )
    return {r["id"]: {"host_id": r["host_id"], "host_name": r["display_name"],
                      "title": r["title"], "status": r["status"], "media": r["media"],
                      "viewer_count": r["viewer_count"], "started_at": r["started_at"],
                      "ended_at": r["ended_at"], "ended_reason": r["ended_reason"]}
            for r in rows}


async def _decide_stream(d: Decision) -> dict[str, Any]:
    if d.verdict == "approve":
        return {}
    conn = d.tx.conn
    host = await conn.fetchval("SELECT host_id::text FROM live_streams WHERE id = $1",
                               d.target_id)
    if host is None:
        return {"removed": False}
    ended = await d.ctx.live.end_in(conn, d.target_id, ENDED_BY_MODERATION)
    if ended:
        # The room (viewers on every node, the host's sockets) closes once this commits.
        d.after_commit.append(functools.partial(d.ctx.live.ended, d.target_id,
                                                ENDED_BY_MODERATION))
        await d.tell_author(host, "live stream")
    return {"removed": ended, "author_id": host}


KINDS: dict[str, TargetKind] = {
    "upload": TargetKind(preview=_preview_uploads, decide=_decide_upload),
    "user": TargetKind(preview=_preview_users, decide=_decide_user),
    "message": TargetKind(preview=_preview_messages, decide=_decide_message),
    "post": TargetKind(preview=_preview_posts, decide=_decide_post),
    "comment": TargetKind(preview=_preview_comments, decide=_decide_comment),
    "listing": TargetKind(preview=_preview_listings, decide=_decide_listing),
    "live": TargetKind(preview=_preview_streams, decide=_decide_stream),
}
