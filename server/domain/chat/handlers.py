"""chat.conversations, chat.history, chat.send, chat.read, chat.typing, chat.edit, chat.delete."""

from __future__ import annotations

from protocol.base import Empty
from protocol.chat import (
    ChatConversations,
    ChatDelete,
    ChatEdit,
    ChatHistory,
    ChatReadCommand,
    ChatSend,
    ChatTypingCommand,
    ConversationsResult,
    HistoryResult,
    MessageResult,
)
from server.domain.chat import service
from server.gateway.dispatch import CommandContext, CommandRegistry
from server.ratelimit import RATE_LIMITER
from server.state import BROKER, DB, EVENT_STREAM, PRESENCE


async def conversations(ctx: CommandContext, cmd: ChatConversations) -> ConversationsResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.conversations(conn, ctx.user_id, cmd.cursor, cmd.limit)


async def history(ctx: CommandContext, cmd: ChatHistory) -> HistoryResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.history(conn, ctx.user_id, cmd.conversation_id, cmd.before,
                                     cmd.limit)


async def send(ctx: CommandContext, cmd: ChatSend) -> MessageResult:
    return await service.send_message(ctx.app[EVENT_STREAM], ctx.app[PRESENCE], ctx.user_id, cmd)


async def read(ctx: CommandContext, cmd: ChatReadCommand) -> Empty:
    return await service.mark_read(ctx.app[EVENT_STREAM], ctx.user_id, cmd.conversation_id,
                                   cmd.message_id)


async def typing(ctx: CommandContext, cmd: ChatTypingCommand) -> Empty:
    async with ctx.app[DB].acquire() as conn:
        return await service.typing(conn, ctx.app[BROKER], ctx.app[RATE_LIMITER], ctx.user_id,
                                    cmd.conversation_id)


async def edit(ctx: CommandContext, cmd: ChatEdit) -> MessageResult:
    return await service.edit_message(ctx.app[EVENT_STREAM], ctx.user_id, cmd.message_id,
                                      cmd.body)


async def delete(ctx: CommandContext, cmd: ChatDelete) -> MessageResult:
    return await service.delete_message(ctx.app[EVENT_STREAM], ctx.user_id, cmd.message_id)


def register(registry: CommandRegistry) -> None:
    registry.add(ChatConversations, conversations)
    registry.add(ChatHistory, history)
    registry.add(ChatSend, send)
    registry.add(ChatReadCommand, read)
    registry.add(ChatTypingCommand, typing)
    registry.add(ChatEdit, edit)
    registry.add(ChatDelete, delete)
