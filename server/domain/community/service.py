"""Community rules: posts, the feed, likes, comments, deletes.

Visibility (``store.VISIBLE``): a post is gone for everyone once deleted, hidden from
others while its author is banned, and hidden both ways across a block; a hidden post is
``not_found`` for every command, exactly like an id never issued. Comments follow the
same rule for their own author, inside a visible post.

Likes are exact under concurrency: ``post_likes`` (one row per user and post) decides
whether a like changes anything, and only a change adds ±1 to the post's counter, in
the same transaction. The counter is spread over shards by user, and the statements
that take contended locks run last (the counter shard, then the author's event stream
for the notification), so a hot post's likers hold them only for the commit.
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from protocol.base import Empty
from protocol.community import (
    Comment,
    CommentResult,
    CommentsResult,
    FeedScope,
    Post,
    PostResult,
    PostsComment,
    PostsCreate,
    PostsFeed,
    PostsResult,
)
from protocol.objects import Role, User
from protocol.types import Location
from server.commands import Caller
from server.deps import Deps
from server.domain.community import store
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.notifications.service import notify
from server.domain.uploads.attachments import check_owned_uploads, mark_public
from server.errors import BadRequest, Forbidden, NotFound
from server.ids import parse_id, require_id
from server.realtime.stream import Transaction

log = logging.getLogger(__name__)

PREVIEW_CHARS = 140
HOUR_S = 3600.0


def post_from_row(row: asyncpg.Record) -> Post:
    location = Location(lat=row["lat"], lng=row["lng"]) if row["lat"] is not None else None
    return Post(
        id=row["id"],
        author=User(id=row["author_id"], display_name=row["author_name"],
                    role=Role(row["author_role"])),
        body=row["body"], photo_ids=list(row["photo_ids"]), location=location,
        like_count=int(row["like_count"]), comment_count=int(row["comment_count"]),
        liked_by_me=bool(row["liked_by_me"]), created_at=row["created_at"],
        edited_at=row["edited_at"],
    )


def comment_from_row(row: asyncpg.Record) -> Comment:
    return Comment(
        id=row["id"], post_id=row["post_id"],
        author=User(id=row["author_id"], display_name=row["author_name"],
                    role=Role(row["author_role"])),
        body=row["body"], created_at=row["created_at"],
    )


def _text(value: str, field: str) -> str:
    text = value.strip()
    if not text:
        raise BadRequest(f"{field}: must not be blank")
    return text


def _after(cursor: str | None) -> store.Keyset | None:
    if cursor is None:
        return None
    at, row_id = decode_cursor(cursor, (datetime, str))
    return at, row_id


class CommunityService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.presence = deps.presence
        self.limiter = deps.limiter
        self.settings = deps.settings

    async def _limit(self, action: str, user_id: str, per_hour: int) -> None:
        await self.limiter.take(f"{action}:{user_id}", per_hour, HOUR_S,
                                f"at most {per_hour} {action} per hour; try again later")

    async def _visible(self, conn: asyncpg.Connection, post_id: str, viewer: str
                       ) -> asyncpg.Record:
        parsed = require_id(post_id, "post_id", "no such post")
        row = await store.select_visible_post(conn, parsed, viewer)
        if row is None:
            raise NotFound("post_id: no such post")
        return row

    # --- posts ------------------------------------------------------------------------

    async def create_post(self, user_id: str, cmd: PostsCreate) -> PostResult:
        body = _text(cmd.body, "body")

        async def work(tx: Transaction) -> PostResult:
            photos = await check_owned_uploads(tx.conn, user_id, cmd.photo_ids)
            # Checked inside the idempotent work: a resend of a recorded post is never
            # refused, and a refused one leaves its key unused.
            await self._limit("posts.create", user_id, self.settings.posts_create_per_hour)
            await mark_public(tx.conn, user_id, photos)  # a post is for everyone
            post_id = await store.insert_post(
                tx.conn, author_id=user_id, body=body, photo_ids=photos,
                lat=cmd.location.lat if cmd.location else None,
                lng=cmd.location.lng if cmd.location else None)
            row = await store.select_visible_post(tx.conn, post_id, user_id)
            assert row is not None
            return PostResult(post=post_from_row(row))

        return await run_idempotent(self.stream, user_id=user_id, scope="posts.create",
                                    key=cmd.idempotency_key, result_type=PostResult, work=work)

    async def feed(self, user_id: str, cmd: PostsFeed) -> PostsResult:
        after = _after(cmd.cursor)
        limit = cmd.limit + 1
        if cmd.scope is FeedScope.RECENT:
            sql = store.recent_page_sql(after is not None)
            args = store.page_args(user_id, limit, [], after)
        elif cmd.scope is FeedScope.AUTHOR:
            assert cmd.author_id is not None  # the command checks it
            author = parse_id(cmd.author_id)
            if author is None:  # like an unknown (or hidden) author: no posts
                return PostsResult(posts=[])
            sql = store.author_page_sql(after is not None)
            args = store.page_args(user_id, limit, [author], after)
        else:
            assert cmd.location is not None  # the command checks it
            radius_m = cmd.radius_km * 1000.0
            cells = store.cells_of_cap(cmd.location.lat, cmd.location.lng, radius_m)
            sql = store.nearby_page_sql(after is not None, by_cells=cells is not None)
            args = store.page_args(
                user_id, limit, [cmd.location.lat, cmd.location.lng, radius_m, cells or []],
                after)
        async with self.db.acquire() as conn:
            rows = await store.select_feed(conn, sql, args)
        more = len(rows) > cmd.limit
        rows = rows[: cmd.limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return PostsResult(posts=[post_from_row(r) for r in rows], next_cursor=next_cursor)

    async def get_post(self, user_id: str, post_id: str) -> PostResult:
        async with self.db.acquire() as conn:
            return PostResult(post=post_from_row(await self._visible(conn, post_id, user_id)))

    async def delete_post(self, caller: Caller, post_id: str) -> Empty:
        parsed = require_id(post_id, "post_id", "no such post")
        async with self.stream.transaction() as tx:
            row = await store.select_post_state(tx.conn, parsed, caller.user_id)
            if row is None or not (row["visible"] or caller.principal.is_admin):
                raise NotFound("post_id: no such post")
            if row["author_id"] != caller.user_id and not caller.principal.is_admin:
                raise Forbidden("post_id: only its author or an admin may delete a post")
            if await store.update_post_deleted(tx.conn, parsed, caller.user_id):
                log.info("post deleted", extra={"post_id": parsed, "by": caller.user_id,
                                                "admin": row["author_id"] != caller.user_id})
        return Empty()

    # --- likes ------------------------------------------------------------------------

    async def like(self, user_id: str, post_id: str, like: bool) -> PostResult:
        async with self.stream.transaction() as tx:
            row = await self._visible(tx.conn, post_id, user_id)
            if like:
                change = await store.update_like_on(tx.conn, row["id"], user_id)
            else:
                change = "off" if await store.update_like_off(tx.conn, row["id"], user_id) \
                    else "same"
            if change == "same":
                return PostResult(post=post_from_row(row))
            author = row["author_id"]
            tell = change == "first" and author != user_id
            liker = await store.select_display_name(tx.conn, user_id) if tell else ""
            # The contended statements last, in this order: the counter shard (1 in 8 of
            # the likers), then the author's event stream (all of them) for the
            # notification, held only until the commit right after.
            await store.add_to_counter(tx.conn, row["id"], user_id,
                                       likes=-1 if change == "off" else 1)
            updated = await store.select_visible_post(tx.conn, row["id"], user_id)
            assert updated is not None
            if tell:
                await notify(tx, self.presence, [author], kind="post.like",
                             title=f"{liker} liked your post",
                             body=row["body"][:PREVIEW_CHARS],
                             data={"post_id": row["id"], "user_id": user_id})
            return PostResult(post=post_from_row(updated))

    # --- comments ---------------------------------------------------------------------

    async def comment(self, user_id: str, cmd: PostsComment) -> CommentResult:
        body = _text(cmd.body, "body")

        async def work(tx: Transaction) -> CommentResult:
            post = await self._visible(tx.conn, cmd.post_id, user_id)
            await self._limit("posts.comment", user_id, self.settings.posts_comment_per_hour)
            row = await store.insert_comment(tx.conn, post_id=post["id"], author_id=user_id,
                                             body=body)
            comment = comment_from_row(row)
            await store.add_to_counter(tx.conn, post["id"], user_id, comments=1)
            if post["author_id"] != user_id:
                await notify(tx, self.presence, [post["author_id"]], kind="post.comment",
                             title=f"{comment.author.display_name} commented on your post",
                             body=body[:PREVIEW_CHARS],
                             data={"post_id": post["id"], "comment_id": comment.id,
                                   "user_id": user_id})
            return CommentResult(comment=comment)

        return await run_idempotent(self.stream, user_id=user_id, scope="posts.comment",
                                    key=cmd.idempotency_key, result_type=CommentResult,
                                    work=work)

    async def comments(self, user_id: str, post_id: str, cursor: str | None, limit: int
                       ) -> CommentsResult:
        after = _after(cursor)
        async with self.db.acquire() as conn:
            post = await self._visible(conn, post_id, user_id)
            rows = await store.select_comments(conn, user_id, post["id"], limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return CommentsResult(comments=[comment_from_row(r) for r in rows],
                              next_cursor=next_cursor)

    async def delete_comment(self, caller: Caller, comment_id: str) -> Empty:
        """Its author, the post's author (even for a comment hidden from them by a block:
        it is on their post) or an admin."""
        parsed = require_id(comment_id, "comment_id", "no such comment")
        me = caller.user_id
        async with self.stream.transaction() as tx:
            row = await store.select_comment_state(tx.conn, parsed, me, for_update=True)
            allowed = (caller.principal.is_admin or (row is not None
                       and me in (row["author_id"], row["post_author_id"])))
            if row is None or not (row["visible"] or allowed):
                raise NotFound("comment_id: no such comment")
            if not allowed:
                raise Forbidden("comment_id: only its author, the post's author or an admin "
                                "may delete a comment")
            if await store.update_comment_deleted(tx.conn, parsed, me):
                await store.add_to_counter(tx.conn, row["post_id"], row["author_id"],
                                           comments=-1)
        return Empty()
