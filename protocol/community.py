"""Community (PROTOCOL §10.2): posts, the feed, likes and comments."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from msgspec import Meta

from protocol.base import Command, Empty, Result
from protocol.objects import User, _Object
from protocol.types import (
    Cursor,
    DistanceKm,
    Id,
    IdempotencyKey,
    Location,
    PageLimit50,
    PhotoIds,
    Timestamp,
)

PostBody = Annotated[str, Meta(min_length=1, max_length=5000)]
"""A post's text. The server trims whitespace and checks 1..5000 again."""
CommentBody = Annotated[str, Meta(min_length=1, max_length=2000)]
"""A comment's text. The server trims whitespace and checks 1..2000 again."""
Count = Annotated[int, Meta(ge=0)]


class FeedScope(StrEnum):
    RECENT = "recent"
    NEARBY = "nearby"
    AUTHOR = "author"


class Post(_Object, kw_only=True):
    """A community post. Counts are exact; ``liked_by_me`` is the asking user's."""

    id: Id
    author: User
    body: PostBody
    photo_ids: PhotoIds
    location: Location | None = None
    """Exact for the author; rounded to 0.01° for everyone else."""
    like_count: Count
    comment_count: Count
    liked_by_me: bool
    created_at: Timestamp
    edited_at: Timestamp | None = None


class Comment(_Object, kw_only=True):
    id: Id
    post_id: Id
    author: User
    body: CommentBody
    created_at: Timestamp


class PostResult(Result, kw_only=True):
    post: Post


class PostsResult(Result, kw_only=True):
    posts: list[Post]
    """Newest first."""
    next_cursor: Cursor | None = None


class CommentResult(Result, kw_only=True):
    comment: Comment


class CommentsResult(Result, kw_only=True):
    comments: list[Comment]
    """Oldest first."""
    next_cursor: Cursor | None = None


class PostsCreate(Command, tag="posts.create", kw_only=True):
    """Publish a post. ``photo_ids`` are the caller's own uploads; they become public
    (visible to anyone once approved)."""

    body: PostBody
    photo_ids: PhotoIds = []
    location: Location | None = None
    idempotency_key: IdempotencyKey | None = None
    result_type = PostResult


class PostsFeed(Command, tag="posts.feed", kw_only=True):
    """Posts newest first: everyone's (``recent``), within ``radius_km`` of ``location``
    (``nearby``, which needs ``location``) or one user's (``author``, which needs
    ``author_id``). Pages neither skip nor repeat while posts are added."""

    scope: FeedScope
    location: Location | None = None
    radius_km: DistanceKm = 25
    author_id: Id | None = None
    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = PostsResult

    def __post_init__(self) -> None:
        if self.scope is FeedScope.NEARBY and self.location is None:
            raise ValueError("location: required with scope nearby")
        if self.scope is FeedScope.AUTHOR and self.author_id is None:
            raise ValueError("author_id: required with scope author")


class PostsGet(Command, tag="posts.get", kw_only=True):
    post_id: Id
    result_type = PostResult


class PostsLike(Command, tag="posts.like", kw_only=True):
    """Like (``like: true``) or unlike a post. Idempotent per user and post; the
    author hears of the first like of each user only."""

    post_id: Id
    like: bool
    result_type = PostResult


class PostsComment(Command, tag="posts.comment", kw_only=True):
    """Comment on a post; its author gets a ``post.comment`` notification unless they
    wrote the comment."""

    post_id: Id
    body: CommentBody
    idempotency_key: IdempotencyKey | None = None
    result_type = CommentResult


class PostsComments(Command, tag="posts.comments", kw_only=True):
    """A post's comments, oldest first."""

    post_id: Id
    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = CommentsResult


class PostsDelete(Command, tag="posts.delete", kw_only=True):
    """Delete a post (its author or an admin)."""

    post_id: Id
    result_type = Empty


class PostsDeleteComment(Command, tag="posts.delete_comment", kw_only=True):
    """Delete a comment (its author, the post's author or an admin)."""

    comment_id: Id
    result_type = Empty
