"""What the moderation queue knows about each kind of target: how to preview it and how to
apply a decision to it. ``KINDS`` maps a kind to its ``TargetKind``; a new kind (posts,
comments, listings, live streams) plugs in with one entry here — its ``preview`` and its
``decide`` — and nothing else changes: the items, their paging, the locking, the report
bookkeeping, the audit entry and ``conflict`` for a second decision are shared
(``AdminService.decide``).

``decide`` runs inside the decision's transaction after the item was resolved, so the
whole decision commits or none of it does. What must happen only after commit (closing a
banned user's sockets) goes into ``Decision.after_commit``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import asyncpg

from protocol.chat import ChatMessageEvent
from server.domain.chat import store as chat_store
from server.domain.chat.service import message_from_row
from server.domain.notifications.service import notify
from server.domain.uploads.moderation import moderate_upload
from server.errors import BadRequest
from server.realtime.presence import Presence
from server.realtime.stream import Transaction
from server.resources.storage import Storage

Preview = dict[str, Any]


class Accounts(Protocol):
    """Bans, as the auth service does them (the composition root passes ``AuthService``)."""

    async def ban_in(self, conn: asyncpg.Connection, user_id: str, reason: str | None
                     ) -> bool: ...

    async def unban_in(self, conn: asyncpg.Connection, user_id: str) -> bool: ...

    async def close_banned_sockets(self, user_id: str) -> None: ...


@dataclass
class Context:
    """What previews and decisions may use."""

    storage: Storage
    presence: Presence
    accounts: Accounts
    url_ttl_s: int


@dataclass
class Decision:
    """One decision being applied: the resolved item, the verdict, and the transaction."""

    tx: Transaction
    ctx: Context
    actor_id: str
    item_id: str
    target_id: str
    verdict: Literal["approve", "reject"]
    reason: str | None
    reasons: list[str]
    """The item's report reasons."""
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def removal_reason(self) -> str:
        """What to tell an author or a banned user: the admin's reason, else the reports'."""
        if self.reason:
            return self.reason
        if self.reasons:
            return "reported for " + ", ".join(r.replace("_", " ") for r in self.reasons)
        return "breaking the community rules"


PreviewFn = Callable[[asyncpg.Connection, Context, Sequence[str]], Awaitable[dict[str, Preview]]]
DecideFn = Callable[[Decision], Awaitable[dict[str, Any]]]
"""Applies the decision; returns what the audit entry's ``data`` should add."""


@dataclass(frozen=True)
class TargetKind:
    preview: PreviewFn
    decide: DecideFn


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
    # Posts and listings (issue #12) join here with one statement each.
    return {"changed": row is not None, "detached_from": {
        "pets": _count(pets), "lost_alerts": _count(alerts), "lost_sightings": _count(sightings),
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
    reason = d.removal_reason()[:500]
    banned = await d.ctx.accounts.ban_in(d.tx.conn, d.target_id, reason)
    if banned:
        accounts, user_id = d.ctx.accounts, d.target_id
        d.after_commit.append(lambda: accounts.close_banned_sockets(user_id))
    return {"banned": banned}


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
    if row["deleted_at"] is None:
        # As chat.delete does: the body goes, the message stays in history, every member's
        # clients learn of it through the durable chat.message event.
        updated = await chat_store.update_message_deleted(conn, d.target_id)
        await d.tx.append(row["member_ids"] or [],
                          ChatMessageEvent(seq=0, message=message_from_row(updated)))
    await notify(d.tx, d.ctx.presence, [row["sender_id"]], kind="moderation.removed",
                 title="Your message was removed",
                 body=f"A moderator removed your message: {d.removal_reason()}",
                 data={"kind": "message", "target_id": d.target_id, "item_id": d.item_id,
                       "conversation_id": row["conversation_id"]})
    return {"removed": True, "author_id": row["sender_id"]}


# --- kinds whose tables are not in this build yet ----------------------------------------------

async def _no_preview(conn: asyncpg.Connection, ctx: Context, ids: Sequence[str]
                      ) -> dict[str, Preview]:
    return {}


def _not_yet(kind: str) -> DecideFn:
    async def decide(d: Decision) -> dict[str, Any]:
        if d.verdict == "reject":
            raise BadRequest(f"decision: removing a {kind} is not supported by this server "
                             "yet (approve closes the item and keeps it)")
        return {}
    return decide


KINDS: dict[str, TargetKind] = {
    "upload": TargetKind(preview=_preview_uploads, decide=_decide_upload),
    "user": TargetKind(preview=_preview_users, decide=_decide_user),
    "message": TargetKind(preview=_preview_messages, decide=_decide_message),
    # Issue #12 (posts, comments, listings) and #15 (live streams) replace these.
    "post": TargetKind(preview=_no_preview, decide=_not_yet("post")),
    "comment": TargetKind(preview=_no_preview, decide=_not_yet("comment")),
    "listing": TargetKind(preview=_no_preview, decide=_not_yet("listing")),
    "live": TargetKind(preview=_no_preview, decide=_not_yet("live stream")),
}
