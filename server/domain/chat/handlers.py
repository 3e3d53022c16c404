"""chat.conversations, chat.history, chat.send, chat.read, chat.typing, chat.edit,
chat.delete → ``ChatService``."""

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
from server.commands import AreaHandlers, Caller
from server.domain.chat.service import ChatService


async def conversations(chat: ChatService, caller: Caller, cmd: ChatConversations
                        ) -> ConversationsResult:
    return await chat.conversations(caller.user_id, cmd.cursor, cmd.limit)


async def history(chat: ChatService, caller: Caller, cmd: ChatHistory) -> HistoryResult:
    return await chat.history(caller.user_id, cmd.conversation_id, cmd.before, cmd.limit)


async def send(chat: ChatService, caller: Caller, cmd: ChatSend) -> MessageResult:
    return await chat.send_message(caller.user_id, cmd)


async def read(chat: ChatService, caller: Caller, cmd: ChatReadCommand) -> Empty:
    return await chat.mark_read(caller.user_id, cmd.conversation_id, cmd.message_id)


async def typing(chat: ChatService, caller: Caller, cmd: ChatTypingCommand) -> Empty:
    return await chat.typing(caller.user_id, cmd.conversation_id)


async def edit(chat: ChatService, caller: Caller, cmd: ChatEdit) -> MessageResult:
    return await chat.edit_message(caller.user_id, cmd.message_id, cmd.body)


async def delete(chat: ChatService, caller: Caller, cmd: ChatDelete) -> MessageResult:
    return await chat.delete_message(caller.user_id, cmd.message_id)


HANDLERS: AreaHandlers = {
    ChatConversations: conversations,
    ChatHistory: history,
    ChatSend: send,
    ChatReadCommand: read,
    ChatTypingCommand: typing,
    ChatEdit: edit,
    ChatDelete: delete,
}
