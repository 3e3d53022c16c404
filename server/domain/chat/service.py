"""Chat: conversations (opened by matches), messages, read marks, typing.

Membership is the only access rule: to a non-member a conversation or message
does not exist (``not_found``, the same answer as for an id never issued).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from protocol.base import DurableEvent, Empty
from protocol.chat import (
    ChatMessageEvent,
    ChatReadEvent,
    ChatSend,
    ChatTypingEvent,
    ConversationsResult,
    HistoryResult,
    MessageResult,
)
from protocol.codec import JSON, encode_result
from protocol.notifications import NotificationEvent
from protocol.objects import ChatMessage, Conversation, Notification
from server.deps import Deps
from server.domain.chat import store
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.notifications.service import PUSH_SIGNAL, collapse_key
from server.domain.safety import store as safety_store
from server.domain.uploads.attachments import check_owned_uploads
from server.errors import BadRequest, Conflict, Forbidden, NotFound
from server.ids import require_id
from server.realtime.stream import Appended, Transaction, seq_offset

EDIT_WINDOW = timedelta(minutes=15)
TYPING_EVERY_S = 3.0
PREVIEW_CHARS = 140


MEMBER_CACHE_SIZE = 100_000  # conversations whose members a node remembers
_TITLE_MARK = "title-" + uuid.uuid4().hex
"""Stands in for a notification's title when it is encoded; the send statement puts the
sender's display name there."""


class _Template:
    """A durable event encoded with ``"seq":0``, split around that 0."""

    def __init__(self, event: DurableEvent) -> None:
        self.template = JSON.encode(event)
        self.seq_at = seq_offset(self.template, event.wire_type())
        self.head = self.template[:self.seq_at]
        self.tail = self.template[self.seq_at + 1:]


class _NoteTemplate:
    """A ``notification`` event split around its seq and its title: HEAD, seq, middle,
    title (a JSON string), tail."""

    HEAD = b'{"type":"notification","seq":'

    def __init__(self, note: Notification) -> None:
        self.id = note.id
        whole = _Template(NotificationEvent(seq=0, notification=note))
        if whole.head != self.HEAD:
            raise ValueError(f"unexpected notification layout: {whole.template[:60]!r}")
        mark = msgspec.json.encode(_TITLE_MARK)
        i = whole.tail.index(mark)
        self.middle = whole.tail[:i]
        self.tail = whole.tail[i + len(mark):]

    def with_title(self, title_json: bytes) -> tuple[bytes, int]:
        """The whole event with ``"seq":0`` and the title, and the offset of that 0."""
        return self.HEAD + b"0" + self.middle + title_json + self.tail, len(self.HEAD)


def message_from_row(row: asyncpg.Record, prefix: str = "") -> ChatMessage:
    p = prefix
    return ChatMessage(
        id=row[p + "id"], conversation_id=row[p + "conversation_id"],
        sender_id=row[p + "sender_id"], client_msg_id=row[p + "client_msg_id"],
        body=row[p + "body"], attachment_ids=list(row[p + "attachment_ids"]),
        created_at=row[p + "created_at"], edited_at=row[p + "edited_at"],
        deleted_at=row[p + "deleted_at"],
    )


def _body(value: str) -> str:
    body = value.strip()
    if not body:
        raise BadRequest("body: must not be blank")
    return body


async def _member(conn: asyncpg.Connection, conversation_id: str, user_id: str
                  ) -> asyncpg.Record:
    require_id(conversation_id, "conversation_id", "no such conversation")
    row = await store.select_membership(conn, conversation_id, user_id)
    if row is None:
        raise NotFound("conversation_id: no such conversation")
    return row


class ChatService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.presence = deps.presence
        self.node = deps.node
        self.limiter = deps.limiter
        self._member_cache: dict[str, list[str]] = {}

    async def send_message(self, user_id: str, cmd: ChatSend) -> MessageResult:
        """One statement, committed on its own (``store.SEND_STATEMENT``): one round trip
        to PostgreSQL for a send without attachments (their check is one more, before)."""
        body = _body(cmd.body)
        conversation_id = require_id(cmd.conversation_id, "conversation_id",
                                     "no such conversation")
        # Attachments first: their answer does not depend on the conversation, so it
        # says nothing about whether a conversation the sender cannot see exists.
        files = (await check_owned_uploads(self.db, user_id, cmd.attachment_ids,
                                           field="attachment_ids")
                 if cmd.attachment_ids else [])
        # Who gets a notification is decided before the statement, from presence (Redis,
        # bounded, never raising: unknown = offline), so nothing waits inside it.
        others = [m for m in await self._members(conversation_id) if m != user_id]
        online = await self.presence.online_or_unknown(others)
        offline = [m for m in others if not online.get(m, False)]

        now = datetime.now(UTC)
        message = ChatMessage(
            id=str(uuid.uuid4()), conversation_id=conversation_id, sender_id=user_id,
            client_msg_id=cmd.client_msg_id, body=body, attachment_ids=files, created_at=now)
        chat = _Template(ChatMessageEvent(seq=0, message=message))
        note_data = {"conversation_id": conversation_id, "message_id": message.id,
                     "sender_id": user_id}
        note_body = body[:PREVIEW_CHARS]
        notes = [_NoteTemplate(Notification(
            id=str(uuid.uuid4()), kind="chat.message", title=_TITLE_MARK, body=note_body,
            data=note_data, created_at=now)) for _ in offline]
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(
                store.SEND_STATEMENT, conversation_id, user_id, cmd.client_msg_id, body,
                message.id, files, encode_result(MessageResult(message=message)), now,
                chat.head, chat.tail, offline, [n.id for n in notes], [n.middle for n in notes],
                _NoteTemplate.HEAD, notes[0].tail if notes else b"", note_body, note_data,
                collapse_key("chat.message", note_data))
            if not row["sent"]:
                return await self._not_sent(conn, user_id, cmd.client_msg_id, row)
        users: list[str] = row["user_ids"]
        appended = [Appended(chat.template, chat.seq_at,
                             [(u, seq - n) for u, seq, n in
                              zip(users, row["last_seqs"], row["notes"], strict=True)])]
        by_user = dict(zip(offline, notes, strict=True))
        for u, seq, n in zip(users, row["last_seqs"], row["notes"], strict=True):
            if n:
                template, seq_at = by_user[u].with_title(row["title_json"])
                appended.append(Appended(template, seq_at, [(u, seq)]))
        await self.stream.committed(appended, [PUSH_SIGNAL] if len(appended) > 1 else [])
        return MessageResult(message=message)

    async def _not_sent(self, conn: asyncpg.Connection, user_id: str, key: str,
                        row: asyncpg.Record) -> MessageResult:
        """Nothing was written: a resend of a recorded key gets the first result (even if
        the conversation has closed since); otherwise the check that failed says why."""
        stored = await conn.fetchrow(
            "SELECT result FROM idempotency_keys "
            "WHERE user_id = $1 AND scope = 'chat.send' AND key = $2", user_id, key)
        if stored is not None:
            if stored["result"] is None:
                raise Conflict("idempotency_key: in use by a request that did not finish")
            return JSON.decode_result(stored["result"], MessageResult)
        if not row["member"]:
            raise NotFound("conversation_id: no such conversation")
        if row["blocked"]:
            raise Forbidden("conversation_id: you cannot send to this conversation")
        if row["closed_at"] is not None:
            raise Conflict("conversation_id: the conversation is closed")
        raise Conflict("client_msg_id: in use by a send that did not finish")

    async def _members(self, conversation_id: str) -> list[str]:
        """A conversation's members (fixed once it is opened), cached per node. Only the
        presence lookup uses it; the send statement checks membership itself."""
        members = self._member_cache.get(conversation_id)
        if members is None:
            members = await store.select_member_ids(self.db, conversation_id)
            if members:
                if len(self._member_cache) >= MEMBER_CACHE_SIZE:
                    self._member_cache.pop(next(iter(self._member_cache)))
                self._member_cache[conversation_id] = members
        return members

    async def conversations(self, user_id: str, cursor: str | None, limit: int
                            ) -> ConversationsResult:
        async with self.db.acquire() as conn:
            after: tuple[datetime, str] | None = None
            if cursor is not None:
                at, cid = decode_cursor(cursor, (datetime, str))
                after = (at, cid)
            rows = await store.select_conversations(conn, user_id, after=after, limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            items = [
                Conversation(
                    id=r["id"], member_ids=list(r["member_ids"]), match_id=r["match_id"],
                    last_message=message_from_row(r, "lm_") if r["lm_id"] is not None else None,
                    unread_count=int(r["unread_count"]), last_activity_at=r["last_activity_at"],
                    closed=r["closed_at"] is not None, listing_id=r["listing_id"],
                )
                for r in rows
            ]
            next_cursor = (encode_cursor(rows[-1]["last_activity_at"], rows[-1]["id"])
                           if more and rows else None)
            return ConversationsResult(conversations=items, next_cursor=next_cursor)

    async def history(self, user_id: str, conversation_id: str, before: str | None,
                      limit: int) -> HistoryResult:
        async with self.db.acquire() as conn:
            conv = await _member(conn, conversation_id, user_id)
            before_pos: int | None = None
            if before is not None:
                require_id(before, "before", "no such message")
                anchor = await store.select_message_in_conversation(conn, conv["id"], before)
                if anchor is None:
                    raise NotFound("before: no such message in this conversation")
                before_pos = int(anchor["pos"])
            rows = await store.select_history(conn, conv["id"], before_pos, limit + 1)
            more = len(rows) > limit
            messages = [message_from_row(r) for r in rows[:limit]]
            return HistoryResult(messages=messages,
                                 next_before=messages[-1].id if more and messages else None)

    async def mark_read(self, user_id: str, conversation_id: str, message_id: str) -> Empty:
        async with self.stream.transaction() as tx:
            conv = await _member(tx.conn, conversation_id, user_id)
            require_id(message_id, "message_id", "no such message")
            message = await store.select_message_in_conversation(tx.conn, conv["id"], message_id)
            if message is None:
                raise NotFound("message_id: no such message in this conversation")
            if await store.update_read_mark(tx.conn, conv["id"], user_id, int(message["pos"])):
                others = [m for m in conv["member_ids"] if m != user_id]
                await tx.append(others, ChatReadEvent(seq=0, conversation_id=conv["id"],
                                                      user_id=user_id, message_id=message["id"]))
        return Empty()

    async def typing(self, user_id: str, conversation_id: str) -> Empty:
        """Ephemeral ``chat.typing`` to the other members, at most one per TYPING_EVERY_S per
        user and conversation; a throttled call answers ``{}`` and sends nothing (clients fire
        typing on keystrokes; an error for that would only be noise)."""
        conv = await _member(self.db, conversation_id, user_id)
        others = [m for m in conv["member_ids"] if m != user_id]
        if others and await safety_store.select_blocked_either_way(self.db, user_id, others):
            raise Forbidden("conversation_id: you cannot send to this conversation")
        if conv["closed_at"] is not None:
            raise Conflict("conversation_id: the conversation is closed")
        decision = await self.limiter.hit(f"chat.typing:{user_id}:{conv['id']}", 1, TYPING_EVERY_S)
        if decision.allowed:
            await self.node.send_ephemeral(others,
                                 ChatTypingEvent(conversation_id=conv["id"], user_id=user_id))
        return Empty()

    async def edit_message(self, user_id: str, message_id: str, body: str) -> MessageResult:
        text = _body(body)
        async with self.stream.transaction() as tx:
            row = await _own_recent_message(tx, user_id, message_id)
            if row["deleted_at"] is not None:
                raise Conflict("message_id: the message was deleted")
            _check_window(row)
            updated = await store.update_message_body(tx.conn, row["id"], text)
            message = message_from_row(updated)
            await tx.append(row["member_ids"], ChatMessageEvent(seq=0, message=message))
        return MessageResult(message=message)

    async def delete_message(self, user_id: str, message_id: str) -> MessageResult:
        async with self.stream.transaction() as tx:
            row = await _own_recent_message(tx, user_id, message_id)
            if row["deleted_at"] is not None:
                return MessageResult(message=message_from_row(row))  # repeating is a no-op
            _check_window(row)
            updated = await store.update_message_deleted(tx.conn, row["id"])
            message = message_from_row(updated)
            await tx.append(row["member_ids"], ChatMessageEvent(seq=0, message=message))
        return MessageResult(message=message)


async def _own_recent_message(tx: Transaction, user_id: str, message_id: str
                              ) -> asyncpg.Record:
    require_id(message_id, "message_id", "no such message")
    row = await store.select_message_for_member(tx.conn, message_id, user_id, for_update=True)
    if row is None:
        raise NotFound("message_id: no such message")
    if row["sender_id"] != user_id:
        raise Forbidden("message_id: only the sender can change a message")
    return row


def _check_window(row: asyncpg.Record) -> None:
    if row["closed_at"] is not None:
        raise Conflict("message_id: the conversation is closed")
    if datetime.now(UTC) - row["created_at"] > EDIT_WINDOW:
        raise Conflict("message_id: messages can be changed for 15 minutes after sending")
