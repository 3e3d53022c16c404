"""Live streaming rules (PROTOCOL §10.5): streams, rooms, chat, reactions, signalling.

Who sees what: a stream whose host is banned, or with a block either way between host
and caller, is ``not_found`` for that caller (hidden everywhere: ``live.list``,
``live.join``, chat, reactions, signalling). Room members are sockets: a socket joins
with ``live.join`` (the host's ``live.start`` socket joins at once); ``live.chat``,
``live.react`` and ``live.signal`` need the calling socket to be a member, or the caller
to be the host (else ``forbidden``).

Background work on every node (``start``/``stop``):
- the **ticker** (every ``state.TICK_S``) for the streams this node holds members of:
  one elected node per stream sends the coalesced ``live.reactions`` (≤ 1/s) and
  ``live.viewers`` (≤ 1 per 2 s, only when the count changed);
- the **sweep** (every ``LIVE_SWEEP_S``) over all live streams: the host grace (a
  stream whose host has had no socket anywhere for ``LIVE_HOST_GRACE_S`` ends; the
  ending UPDATE is the arbiter, so exactly one node ends it) and the viewer-count
  snapshot that ``live.list`` sorts by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from protocol.base import Empty
from protocol.live import (
    SIGNAL_DATA_MAX_BYTES,
    JoinResult,
    LiveChatCommand,
    LiveChatEvent,
    LiveChatResult,
    LiveEnded,
    LiveReact,
    LiveReactions,
    LiveSignalCommand,
    LiveSignalEvent,
    LiveStart,
    LiveViewers,
    StartResult,
    StreamResult,
    StreamsResult,
)
from protocol.objects import (
    LiveChatMessage,
    LiveStream,
    MediaRole,
    ReactionKind,
    Role,
    StreamStatus,
    User,
)
from protocol.types import utc_now
from server.commands import Caller
from server.deps import Deps
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.live import store
from server.domain.live.media import MediaModes
from server.domain.live.state import TICK_S, LiveState, MemoryLiveState, RedisLiveState
from server.domain.matching import store as matching_store
from server.domain.notifications.service import notify
from server.domain.safety.store import select_blocked_either_way
from server.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from server.ids import parse_id, require_id
from server.realtime.node import RoomJoin
from server.realtime.stream import Transaction

log = logging.getLogger(__name__)

ROOM_PREFIX = "live:"
SWEEP_CHUNK = 1000
_chat_encoder = msgspec.json.Encoder()
_chat_decoder = msgspec.json.Decoder(LiveChatMessage)
_signal_encoder = msgspec.json.Encoder()
_REACTION_KINDS = frozenset(k.value for k in ReactionKind)


def room_of(stream_id: str) -> str:
    return ROOM_PREFIX + stream_id


def _not_found() -> NotFound:
    return NotFound("stream_id: no such stream")


class LiveService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.node = deps.node
        self.presence = deps.presence
        self.limiter = deps.limiter
        self.settings = deps.settings
        self.media = MediaModes(deps.settings)
        self.state: LiveState = (RedisLiveState(deps.redis, deps.settings.redis_prefix)
                                 if deps.redis is not None else MemoryLiveState())
        # Lease holder identity for the ticker (one per process).
        self.node_id = secrets.token_hex(6)
        self._hosts: dict[str, str] = {}  # stream id → host id: immutable, a cache only
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(TICK_S, self.tick_once, "live ticker"),
                                name="live-ticker"),
            asyncio.create_task(self._every(self.settings.live_sweep_s, self.sweep_once,
                                            "live sweep"), name="live-sweep"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    async def _every(interval: float, work: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except Exception as exc:  # an outage: next round
                log.warning("%s failed; retrying next round", what,
                            extra={"error": repr(exc)})

    # --- objects -------------------------------------------------------------------------
    def _stream_from(self, row: asyncpg.Record, viewer_count: int | None = None) -> LiveStream:
        return LiveStream(
            id=row["id"],
            host=User(id=row["host_id"], display_name=row["host_name"],
                      role=Role(row["host_role"])),
            pet_id=row["pet_id"], title=row["title"], status=StreamStatus(row["status"]),
            viewer_count=row["viewer_count"] if viewer_count is None else viewer_count,
            started_at=row["started_at"], ended_at=row["ended_at"],
            media=self.media.get(row["media"]).describe(row["id"]),
        )

    async def _visible(self, stream_id: str, caller: Caller) -> asyncpg.Record:
        sid = require_id(stream_id, "stream_id", "no such stream")
        row = await store.select_stream(self.db, sid, caller.user_id)
        if row is None or (row["hidden"] and not caller.principal.is_admin):
            raise _not_found()
        return row

    # --- commands --------------------------------------------------------------------------
    async def start_stream(self, caller: Caller, cmd: LiveStart) -> StartResult:
        user_id = caller.user_id
        title = cmd.title.strip()
        if not title:
            raise BadRequest("title: must not be blank")
        media = self.media.get(self.media.default)

        async def work(tx: Transaction) -> StartResult:
            # Inside the idempotent work: a resend of a started stream is never refused.
            await self.limiter.take(f"live.start:{user_id}", self.settings.live_start_per_hour,
                                    3600.0, "too many streams started; try again later")
            pet_id = None
            if cmd.pet_id is not None:
                pet_id = require_id(cmd.pet_id, "pet_id", "no such pet")
                if not await store.select_pet_is_owned(tx.conn, user_id, pet_id):
                    raise NotFound("pet_id: no such pet")
            try:
                row = await store.insert_stream(tx.conn, host_id=user_id, pet_id=pet_id,
                                                title=title, media=media.kind.value)
            except asyncpg.UniqueViolationError:  # the partial unique index: one per host
                raise Conflict("you are live already: end that stream first") from None
            matched = await matching_store.select_matched_user_ids(tx.conn, user_id)
            blocked = (await select_blocked_either_way(tx.conn, user_id, matched)
                       if matched else set())
            audience = [u for u in matched if u not in blocked]
            if audience:
                await notify(tx, self.presence, audience, kind="live.started",
                             title=f"{row['host_name']} is live", body=title[:140],
                             data={"stream_id": row["id"], "host_id": user_id})
            return StartResult(
                stream=self._stream_from(row, 0),
                publish=media.access(stream_id=row["id"], host_id=user_id, user_id=user_id,
                                     display_name=row["host_name"], role=MediaRole.HOST))

        result = await run_idempotent(self.stream, user_id=user_id, scope="live.start",
                                      key=cmd.idempotency_key, result_type=StartResult,
                                      work=work)
        sid = result.stream.id
        self._hosts[sid] = user_id
        # The host's socket is a member: it gets chat, reactions, counts and signals.
        await self.node.join_room(room_of(sid), user_id, caller.connection_id,
                                  uncounted=user_id)
        return result

    async def end_stream(self, caller: Caller, stream_id: str) -> StreamResult:
        row = await self._visible(stream_id, caller)
        is_host = row["host_id"] == caller.user_id
        if not is_host and not caller.principal.is_admin:
            raise Forbidden("stream_id: only the host or an admin can end a stream")
        await self.end(row["id"], "host" if is_host else "admin")
        row = await store.select_stream(self.db, row["id"], caller.user_id)
        assert row is not None
        return StreamResult(stream=self._stream_from(row))

    async def end(self, stream_id: str, reason: str, *, media: str | None = None) -> bool:
        """End a live stream (any node, any cause): members get ``live.ended`` and leave.
        False if it was not live (``media``: or not of that media kind)."""
        if not await store.update_stream_ended(self.db, stream_id, reason, media=media):
            return False
        await self._ended(stream_id, reason)
        return True

    # Ending from another area's transaction (moderation, bans): the row changes in the
    # caller's transaction, the room closes once that committed.
    async def end_in(self, conn: asyncpg.Connection, stream_id: str, reason: str) -> bool:
        """End a live stream inside the caller's transaction (False if it was not live).
        After the commit, call ``ended``."""
        return await store.update_stream_ended(conn, stream_id, reason)

    async def end_hosted_in(self, conn: asyncpg.Connection, host_id: str, reason: str
                            ) -> list[str]:
        """End the host's live stream inside the caller's transaction; the ids ended.
        After the commit, call ``ended`` for each."""
        return await store.update_streams_of_host_ended(conn, host_id, reason)

    async def ended(self, stream_id: str, reason: str) -> None:
        """After a committed ``end_in``/``end_hosted_in``: members on every node get
        ``live.ended`` and the room closes."""
        await self._ended(stream_id, reason)

    async def _ended(self, stream_id: str, reason: str) -> None:
        log.info("live stream ended", extra={"stream_id": stream_id, "reason": reason})
        await self.node.close_room(room_of(stream_id), LiveEnded(stream_id=stream_id))
        try:
            await self.state.clear(stream_id)
        except Exception as exc:  # its keys expire on their own
            log.warning("live state not cleared", extra={"stream_id": stream_id,
                                                         "error": repr(exc)})
        self._hosts.pop(stream_id, None)

    async def list_streams(self, caller: Caller, cursor: str | None, limit: int
                           ) -> StreamsResult:
        after: tuple[int, str] | None = None
        if cursor is not None:
            count, sid = decode_cursor(cursor, (int, str))
            after = (count, sid)
        rows = await store.select_live_streams(self.db, caller.user_id, after=after,
                                               limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (encode_cursor(rows[-1]["viewer_count"], rows[-1]["id"])
                       if more and rows else None)
        return StreamsResult(streams=[self._stream_from(r) for r in rows],
                             next_cursor=next_cursor)

    async def join(self, caller: Caller, stream_id: str) -> JoinResult:
        row = await self._visible(stream_id, caller)
        sid, host_id, user_id = row["id"], row["host_id"], caller.user_id
        if row["status"] != StreamStatus.LIVE:
            raise Conflict("stream_id: the stream has ended")
        media = self.media.get(row["media"])
        is_host = host_id == user_id
        room = room_of(sid)
        self._hosts[sid] = host_id
        joined = await self.node.join_room(room, user_id, caller.connection_id,
                                           capacity=None if is_host else media.capacity,
                                           uncounted=host_id)
        if joined is RoomJoin.FULL:
            raise Conflict(f"stream_id: the stream is full ({media.capacity} viewers)")
        if joined is RoomJoin.GONE:
            raise Conflict("stream_id: this connection is closing")
        # An end that committed before we joined would never reach this socket.
        latest = await store.select_stream(self.db, sid, user_id)
        if latest is None or latest["status"] != StreamStatus.LIVE:
            await self.node.leave_room(room, user_id, caller.connection_id)
            raise Conflict("stream_id: the stream has ended")
        recent, count = await asyncio.gather(self.state.recent_chat(sid),
                                             self.node.room_count(room, uncounted=host_id))
        chat = [_chat_decoder.decode(m) for m in recent]
        senders = list({m.sender.id for m in chat} - {user_id})
        if senders:
            async with self.db.acquire() as conn:
                hidden = await select_blocked_either_way(conn, user_id, senders)
            chat = [m for m in chat if m.sender.id not in hidden]
        name = await self._display_name(user_id) if not is_host else row["host_name"]
        view = media.access(stream_id=sid, host_id=host_id, user_id=user_id,
                            display_name=name,
                            role=MediaRole.HOST if is_host else MediaRole.VIEWER)
        return JoinResult(stream=self._stream_from(latest, count), recent_chat=chat, view=view)

    async def _display_name(self, user_id: str) -> str:
        name: str | None = await self.db.fetchval(
            "SELECT display_name FROM users WHERE id = $1", user_id)
        return name or "Someone"

    async def leave(self, caller: Caller, stream_id: str) -> Empty:
        """Idempotent: leaving a room one is not in (or an unknown stream) is ``{}``."""
        sid = parse_id(stream_id)
        if sid is not None:  # an id that cannot exist is an unknown stream: {} as well
            await self.node.leave_room(room_of(sid), caller.user_id, caller.connection_id)
        return Empty()

    async def _context(self, caller: Caller, stream_id: str) -> tuple[str, asyncpg.Record]:
        """The stream's room context for a member command: visible (else not_found),
        the caller the host or a member socket (else forbidden), live (else conflict)."""
        sid = require_id(stream_id, "stream_id", "no such stream")
        ctx = await store.select_room_context(self.db, sid, caller.user_id)
        if ctx is None or ctx["hidden"]:
            raise _not_found()
        if (ctx["host_id"] != caller.user_id
                and not self.node.in_room(room_of(sid), caller.user_id, caller.connection_id)):
            raise Forbidden("stream_id: join the stream first")
        if ctx["status"] != StreamStatus.LIVE:
            raise Conflict("stream_id: the stream has ended")
        return sid, ctx

    async def _limit(self, what: str, user_id: str, sid: str, per_minute: int) -> None:
        await self.limiter.take(f"{what}:{user_id}:{sid}", per_minute, 60.0,
                                f"too many {what} in this stream; slow down")

    async def chat(self, caller: Caller, cmd: LiveChatCommand) -> LiveChatResult:
        body = cmd.body.strip()
        if not body:
            raise BadRequest("body: must not be blank")
        sid, ctx = await self._context(caller, cmd.stream_id)
        user_id = caller.user_id
        await self._limit("live.chat", user_id, sid, self.settings.live_chat_per_minute)
        message = LiveChatMessage(
            id=str(uuid.uuid4()), stream_id=sid,
            sender=User(id=user_id, display_name=ctx["display_name"], role=Role(ctx["role"])),
            body=body, created_at=utc_now())
        # Users blocked either way with the sender do not get the line (one frame for
        # everyone else: the exclusion is applied by each node's fan-out).
        await asyncio.gather(
            self.state.push_chat(sid, _chat_encoder.encode(message)),
            self.node.send_to_room(room_of(sid), LiveChatEvent(stream_id=sid, message=message),
                                   exclude_user_ids=list(ctx["blocks"])),
        )
        return LiveChatResult(message=message)

    async def react(self, caller: Caller, cmd: LiveReact) -> Empty:
        sid, _ = await self._context(caller, cmd.stream_id)
        await self._limit("live.react", caller.user_id, sid,
                          self.settings.live_reactions_per_minute)
        await self.state.add_reaction(sid, cmd.kind.value)
        return Empty()

    async def signal(self, caller: Caller, cmd: LiveSignalCommand) -> Empty:
        if len(_signal_encoder.encode(cmd.data)) > SIGNAL_DATA_MAX_BYTES:
            raise TooLarge(f"data: at most {SIGNAL_DATA_MAX_BYTES} bytes as JSON")
        sid, ctx = await self._context(caller, cmd.stream_id)
        if ctx["media"] != "p2p":
            raise BadRequest("stream_id: live.signal is for p2p streams (this one uses "
                             f"{ctx['media']})")
        user_id, host_id, room = caller.user_id, ctx["host_id"], room_of(sid)
        if user_id == host_id:
            if cmd.to == host_id or not await self.node.room_has_user(room, cmd.to):
                raise Forbidden("to: not a viewer in this stream")
        elif cmd.to != host_id:
            raise Forbidden("to: viewers signal the host only")
        await self.node.send_to_room(
            room, LiveSignalEvent(stream_id=sid, from_=user_id, data=cmd.data),
            user_ids=[cmd.to])
        return Empty()

    # --- presence, media server ---------------------------------------------------------
    async def host_presence(self, user_id: str, online: bool) -> None:
        """Presence listener: a host's first socket anywhere stops their streams' grace
        clock, their last one closing starts it (the sweep also notices crashed nodes)."""
        try:
            await store.update_host_presence(self.db, user_id, online)
        except asyncpg.InterfaceError as exc:  # shutting down: the sweep of another node
            # (or of this one after a restart) sees the host's presence instead
            log.debug("host presence not recorded", extra={"error": repr(exc)})

    async def media_room_finished(self, room_name: str) -> bool:
        """LiveKit reported the room finished: end its stream (livekit streams only)."""
        prefix = "live-"
        if not room_name.startswith(prefix):
            return False
        sid = require_id(room_name[len(prefix):], "room", "not a stream's room")
        return await self.end(sid, "media", media="livekit")

    # --- background work -------------------------------------------------------------------
    async def _host_of(self, sid: str) -> str | None:
        host = self._hosts.get(sid)
        if host is None:
            host = await store.select_host_id(self.db, sid)
            if host is not None:
                self._hosts[sid] = host
        return host

    async def tick_once(self) -> None:
        """Flush coalesced reactions and viewer counts of the streams held here."""
        rooms = self.node.local_rooms(ROOM_PREFIX)
        if not rooms:
            return
        sids = [r[len(ROOM_PREFIX):] for r in rooms]
        ticks = await self.state.tick(sids, self.node_id)
        for sid, tick in zip(sids, ticks, strict=True):
            if not tick.holder:
                continue
            room = room_of(sid)
            if tick.reactions:
                counts = {ReactionKind(k): n for k, n in tick.reactions.items()
                          if k in _REACTION_KINDS}
                await self.node.send_to_room(room, LiveReactions(stream_id=sid, counts=counts))
            if tick.viewers_due:
                count = await self.node.room_count(room, uncounted=await self._host_of(sid))
                if count != tick.last_viewers:
                    await self.state.viewers_sent(sid, count)
                    await self.node.send_to_room(room, LiveViewers(stream_id=sid, count=count))

    async def sweep_once(self) -> None:
        after: str | None = None
        while True:
            async with self.db.acquire() as conn:
                rows = await store.select_live_for_sweep(conn, after=after, limit=SWEEP_CHUNK)
            if not rows:
                break
            await self._sweep_chunk(rows)
            if len(rows) < SWEEP_CHUNK:
                break
            after = rows[-1]["id"]
        async with self.db.acquire() as conn:
            ended = await store.update_ended_after_grace(conn, self.settings.live_host_grace_s)
        for sid in ended:
            await self._ended(sid, "host_gone")

    async def _sweep_chunk(self, rows: list[asyncpg.Record]) -> None:
        hosts = list({r["host_id"] for r in rows})
        online, counts = await asyncio.gather(
            self.presence.online(hosts),
            self.node.room_counts([(room_of(r["id"]), r["host_id"]) for r in rows]))
        away = [r["id"] for r in rows if not online.get(r["host_id"]) and not r["away"]]
        back = [r["id"] for r in rows if online.get(r["host_id"]) and r["away"]]
        changed = [(r["id"], n) for r, n in zip(rows, counts, strict=True)
                   if n != r["viewer_count"]]
        async with self.db.acquire() as conn:
            await store.update_host_away(conn, away=away, back=back)
            await store.update_viewer_counts(conn, [c[0] for c in changed],
                                             [c[1] for c in changed])
