"""Closing an account (``DELETE /api/v1/account``, PROTOCOL §9): one list of per-table steps.

``delete_account_data(tx, user_id, storage)`` runs every step of ``STEPS`` in order, in the
caller's transaction (``stream.transaction()``, so the events a step appends reach the
other users only if the whole deletion commits), then deletes the stored objects of the
account's uploads — still before commit, like the upload sweeper: a failure leaves rows
without objects (harmless, the next attempt removes them), never objects without rows.

What stays: the ``users`` row as a tombstone (``display_name`` "Deleted user", an
e-mail address that can never be mailed, no password) so the chat messages and lost-pet
sightings the account sent keep a sender; conversations it was in (closed, with a
``conversation.closed`` event to every other member); reports others filed about it.
Everything else of the account goes: sessions (so every token, refresh token and cookie
answers 401), adoption listings and applications (a listing the account had been
accepted for is available again), community posts, and its likes and comments on others'
posts (those posts' counts are recomputed), reports it filed, live streams (ended),
pets (and so their matches and swipes), uploads and their objects, lost
alerts (with the sightings on them), watch circles, devices, notifications and their
pushes, preferences, blocks, idempotency keys, the event stream, account tokens. The
address is free to register again at once.

**Adding a table**: one line in ``STEPS``, before ``pets`` if the table references pets,
e.g.::

    ("live streams", sql("DELETE FROM live_streams WHERE host_id = $1")),

``sql(statement)`` runs a statement with ``$1`` = the user id. A step that needs more
(events to others, stored objects) is an ``async def step(ctx: DeletionContext)``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protocol.chat import ConversationClosed
from server.domain.uploads import store as upload_store
from server.errors import Unavailable
from server.realtime.stream import Transaction
from server.resources.storage import Storage

log = logging.getLogger(__name__)

DELETED_DISPLAY_NAME = "Deleted user"


@dataclass
class DeletionContext:
    tx: Transaction
    user_id: str
    object_keys: list[str] = field(default_factory=list)
    """Stored objects to delete once every SQL step has run."""
    multipart_uploads: list[tuple[str, str]] = field(default_factory=list)
    """(key, multipart id) of unfinished multipart uploads to abort."""


Step = Callable[[DeletionContext], Awaitable[None]]


def sql(statement: str) -> Step:
    """A step that runs ``statement`` with ``$1`` = the deleted user's id."""

    async def step(ctx: DeletionContext) -> None:
        await ctx.tx.conn.execute(statement, ctx.user_id)

    return step


async def close_conversations(ctx: DeletionContext) -> None:
    """Every open conversation of the account closes; its other members are told
    (``conversation.closed``, as after an unmatch). History stays readable."""
    rows = await ctx.tx.conn.fetch(
        """UPDATE conversations c SET closed_at = now()
           FROM conversation_members me
           WHERE me.conversation_id = c.id AND me.user_id = $1 AND c.closed_at IS NULL
           RETURNING c.id::text AS id,
                     (SELECT array_agg(m.user_id::text) FROM conversation_members m
                      WHERE m.conversation_id = c.id AND m.user_id <> $1) AS others""",
        ctx.user_id,
    )
    for row in rows:
        if row["others"]:
            await ctx.tx.append(row["others"], ConversationClosed(seq=0, conversation_id=row["id"]))


async def uploads(ctx: DeletionContext) -> None:
    """Upload rows now; their objects once every other step has run."""
    # The owner's upload lock: an upload being created right now either commits first
    # (and is deleted here) or waits and then finds no account to upload for.
    await upload_store.lock_owner(ctx.tx.conn, ctx.user_id)
    rows = await ctx.tx.conn.fetch(
        "DELETE FROM uploads WHERE owner_id = $1 "
        "RETURNING incoming_key, object_key, thumb_key, multipart_id",
        ctx.user_id,
    )
    for row in rows:
        ctx.object_keys.extend(k for k in (row["incoming_key"], row["object_key"],
                                           row["thumb_key"]) if k)
        if row["multipart_id"] and row["incoming_key"]:
            ctx.multipart_uploads.append((row["incoming_key"], row["multipart_id"]))


async def community_contributions(ctx: DeletionContext) -> None:
    """The account's likes and comments on other people's posts go, and those posts'
    counters are recomputed exactly (one row per post afterwards)."""
    conn = ctx.tx.conn
    touched = await conn.fetchval(
        """WITH liked AS (DELETE FROM post_likes WHERE user_id = $1 RETURNING post_id),
                commented AS (DELETE FROM post_comments WHERE author_id = $1
                              RETURNING post_id)
           SELECT coalesce(array_agg(DISTINCT t.post_id), '{}')
           FROM (SELECT post_id FROM liked UNION SELECT post_id FROM commented) t
           JOIN posts p ON p.id = t.post_id AND p.author_id <> $1""",
        ctx.user_id,
    )
    if not touched:
        return
    # Two statements: a CTE's DELETE is not yet visible to its INSERT's unique check.
    await conn.execute("DELETE FROM post_counters WHERE post_id = ANY($1::uuid[])", touched)
    await conn.execute(
        """INSERT INTO post_counters (post_id, shard, likes, comments)
           SELECT t, 0,
                  (SELECT count(*) FROM post_likes l WHERE l.post_id = t AND l.active),
                  (SELECT count(*) FROM post_comments m
                   WHERE m.post_id = t AND m.deleted_at IS NULL)
           FROM unnest($1::uuid[]) AS t""",
        touched,
    )


async def adoption_applications(ctx: DeletionContext) -> None:
    """The account's applications to others' listings go; a listing it had been accepted
    for is available again (as after a withdrawal)."""
    await ctx.tx.conn.execute(
        """WITH gone AS (DELETE FROM adoption_applications WHERE applicant_id = $1
                         RETURNING listing_id, status)
           UPDATE adoption_listings l SET status = 'available', updated_at = clock_timestamp()
           FROM gone g WHERE l.id = g.listing_id AND g.status = 'accepted'
             AND l.status = 'pending'""",
        ctx.user_id,
    )


tombstone = sql(
    f"""UPDATE users SET email = 'deleted-' || id::text || '@deleted.invalid',
            display_name = '{DELETED_DISPLAY_NAME}', password_hash = '!deleted',
            role = 'user', email_verified = false, deleted_at = now()
        WHERE id = $1"""
)

STEPS: list[tuple[str, Step]] = [
    ("conversations", close_conversations),
    ("uploads", uploads),
    ("adoption applications", adoption_applications),
    ("adoption listings", sql("DELETE FROM adoption_listings WHERE lister_id = $1")),
    ("community likes and comments", community_contributions),
    ("community posts", sql("DELETE FROM posts WHERE author_id = $1")),
    ("reports made", sql("DELETE FROM reports WHERE reporter_id = $1")),
    ("live streams", sql("UPDATE live_streams SET status = 'ended', ended_at = now(), "
                         "ended_reason = 'host_gone' WHERE host_id = $1 AND status = 'live'")),
    ("pets", sql("DELETE FROM pets WHERE owner_id = $1")),
    ("lost alerts", sql("DELETE FROM lost_alerts WHERE owner_id = $1")),
    ("lost watch circles", sql("DELETE FROM lost_watches WHERE user_id = $1")),
    ("lost alert receipts", sql("DELETE FROM lost_alert_recipients WHERE user_id = $1")),
    ("discovery preferences", sql("DELETE FROM preferences WHERE user_id = $1")),
    ("blocks", sql("DELETE FROM user_blocks WHERE blocker_id = $1 OR blocked_id = $1")),
    ("devices", sql("DELETE FROM devices WHERE user_id = $1")),
    ("notification preferences",
     sql("DELETE FROM notification_preferences WHERE user_id = $1")),
    ("push outbox", sql("DELETE FROM push_outbox WHERE user_id = $1")),
    ("notifications", sql("DELETE FROM notifications WHERE user_id = $1")),
    ("idempotency keys", sql("DELETE FROM idempotency_keys WHERE user_id = $1")),
    ("events", sql("DELETE FROM events WHERE user_id = $1")),
    ("event stream", sql("DELETE FROM user_streams WHERE user_id = $1")),
    ("acks", sql("DELETE FROM stream_acks WHERE user_id = $1")),
    ("account tokens", sql("DELETE FROM account_tokens WHERE user_id = $1")),
    ("sessions", sql("DELETE FROM sessions WHERE user_id = $1")),  # and refresh tokens
    ("profile", tombstone),
]
"""Run in this order. Add a table with one line (see the module docstring)."""


async def delete_account_data(tx: Transaction, user_id: str, storage: Storage,
                              steps: list[tuple[str, Step]] | None = None) -> int:
    """Run every step in ``tx``, then delete the account's stored objects; the number of
    objects deleted. Raises ``Unavailable`` (and the caller's transaction rolls back) if
    the object store refuses."""
    ctx = DeletionContext(tx=tx, user_id=user_id)
    for _name, step in steps if steps is not None else STEPS:
        await step(ctx)
    for key, multipart_id in ctx.multipart_uploads:
        try:
            await storage.abort_multipart(key, multipart_id)
        except Exception:  # the parts are unreachable without the row; the store's own
            log.warning("could not abort a multipart upload of a deleted account",  # expiry
                        extra={"user_id": user_id}, exc_info=True)  # rules clean them up
    if ctx.object_keys:
        try:
            await storage.delete(*ctx.object_keys)
        except Exception:
            log.warning("object store refused the deletion of an account's uploads",
                        extra={"user_id": user_id, "objects": len(ctx.object_keys)},
                        exc_info=True)
            raise Unavailable("storage: unavailable; nothing was deleted, try again") from None
    return len(ctx.object_keys)
