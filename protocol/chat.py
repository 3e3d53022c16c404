"""Chat: conversations, history, sending, read receipts, typing."""

from __future__ import annotations

from protocol.base import Command, DurableEvent, Empty, Event, Result
from protocol.objects import ChatMessage, Conversation
from protocol.types import Cursor, Id, MessageBody, PageLimit50, PageLimit100, PhotoIds


class ConversationsResult(Result, kw_only=True):
    conversations: list[Conversation]
    """Most recent activity first."""
    next_cursor: Cursor | None = None


class HistoryResult(Result, kw_only=True):
    messages: list[ChatMessage]
    """Newest first."""
    next_before: Id | None = None
    """Pass as ``before`` to get the next (older) page; absent at the start."""


class MessageResult(Result, kw_only=True):
    message: ChatMessage


class ChatConversations(Command, tag="chat.conversations", kw_only=True):
    """The user's conversations, most recent activity first."""

    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = ConversationsResult


class ChatHistory(Command, tag="chat.history", kw_only=True):
    """Messages of a conversation the user is a member of, newest first, older than
    message ``before`` when given."""

    conversation_id: Id
    before: Id | None = None
    limit: PageLimit100 = 50
    result_type = HistoryResult


class ChatSend(Command, tag="chat.send", kw_only=True):
    """Send a message. ``client_msg_id`` makes it idempotent: resending returns the
    original message and sends nothing new. Every member's devices, the sender's
    included, get ``chat.message``. A closed conversation answers ``conflict``."""

    conversation_id: Id
    client_msg_id: Id
    body: MessageBody
    """Trimmed by the server, then checked again for 1..4000 characters."""
    attachment_ids: PhotoIds = []
    """The sender's ``chat_attachment`` uploads."""
    result_type = MessageResult


class ChatReadCommand(Command, tag="chat.read", kw_only=True):
    """Mark the conversation read up to and including ``message_id``. Never moves the
    read mark backwards; other members get ``chat.read``."""

    conversation_id: Id
    message_id: Id
    result_type = Empty


class ChatTypingCommand(Command, tag="chat.typing", kw_only=True):
    """Tell the other members (ephemeral ``chat.typing``) that the user is typing.
    Send at most every few seconds while typing."""

    conversation_id: Id
    result_type = Empty


class ChatEdit(Command, tag="chat.edit", kw_only=True):
    """Replace the body of the sender's own, not deleted message; members get
    ``chat.message`` with the edited message (``edited_at`` set)."""

    message_id: Id
    body: MessageBody
    result_type = MessageResult


class ChatDelete(Command, tag="chat.delete", kw_only=True):
    """Delete the sender's own message: body emptied, attachments dropped,
    ``deleted_at`` set; members get ``chat.message`` with it. Repeating is a no-op."""

    message_id: Id
    result_type = MessageResult


class ChatMessageEvent(DurableEvent, tag="chat.message", kw_only=True):
    """To every member, every device: a new, edited or deleted message (same ``id``
    means the same message; replace it)."""

    message: ChatMessage


class ChatReadEvent(DurableEvent, tag="chat.read", kw_only=True):
    """To the other members: ``user_id`` has read up to ``message_id``."""

    conversation_id: Id
    user_id: Id
    message_id: Id


class ChatTypingEvent(Event, tag="chat.typing", kw_only=True):
    """Ephemeral, to the other members: ``user_id`` is typing."""

    conversation_id: Id
    user_id: Id


class ConversationClosed(DurableEvent, tag="conversation.closed", kw_only=True):
    """To both members: the match was undone; the conversation is read-only now."""

    conversation_id: Id
