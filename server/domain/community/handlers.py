"""posts.* commands → ``CommunityService``."""

from __future__ import annotations

from protocol.base import Empty
from protocol.community import (
    CommentResult,
    CommentsResult,
    PostResult,
    PostsComment,
    PostsComments,
    PostsCreate,
    PostsDelete,
    PostsDeleteComment,
    PostsFeed,
    PostsGet,
    PostsLike,
    PostsResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.community.service import CommunityService


async def create(community: CommunityService, caller: Caller, cmd: PostsCreate) -> PostResult:
    return await community.create_post(caller.user_id, cmd)


async def feed(community: CommunityService, caller: Caller, cmd: PostsFeed) -> PostsResult:
    return await community.feed(caller.user_id, cmd)


async def get(community: CommunityService, caller: Caller, cmd: PostsGet) -> PostResult:
    return await community.get_post(caller.user_id, cmd.post_id)


async def like(community: CommunityService, caller: Caller, cmd: PostsLike) -> PostResult:
    return await community.like(caller.user_id, cmd.post_id, cmd.like)


async def comment(community: CommunityService, caller: Caller, cmd: PostsComment
                  ) -> CommentResult:
    return await community.comment(caller.user_id, cmd)


async def comments(community: CommunityService, caller: Caller, cmd: PostsComments
                   ) -> CommentsResult:
    return await community.comments(caller.user_id, cmd.post_id, cmd.cursor, cmd.limit)


async def delete(community: CommunityService, caller: Caller, cmd: PostsDelete) -> Empty:
    return await community.delete_post(caller, cmd.post_id)


async def delete_comment(community: CommunityService, caller: Caller, cmd: PostsDeleteComment
                         ) -> Empty:
    return await community.delete_comment(caller, cmd.comment_id)


HANDLERS: AreaHandlers = {
    PostsCreate: create,
    PostsFeed: feed,
    PostsGet: get,
    PostsLike: like,
    PostsComment: comment,
    PostsComments: comments,
    PostsDelete: delete,
    PostsDeleteComment: delete_comment,
}
