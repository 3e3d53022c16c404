"""Safety rules: blocks (both ways, everywhere) and reports for the moderation queue.

Blocking is silent: nothing is sent to the blocked user that names the block. What they
can notice is what the contract prescribes: a live match between the two ends exactly
as ``matches.unmatch`` ends it (``conversation.closed`` to both), and from then on
neither sees the other's things (``not_found``) nor can message them (``forbidden``).

A block and a new match between the same two users never interleave: both take the
user-pair lock (``store.lock_user_pair``) in their transaction, so a swipe that would
complete a match either commits first (and the block then ends that match) or sees the
block.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg

from protocol.base import Empty
from protocol.chat import ConversationClosed
from protocol.objects import Role, User
from protocol.safety import (
    BlockedResult,
    Report,
    ReportReason,
    ReportResult,
    ReportsCreate,
    ReportStatus,
    ReportTarget,
    ReportTargetKind,
)
from server.deps import Deps
from server.domain.adoption import store as adoption_store
from server.domain.adoption.service import listing_visible
from server.domain.chat import store as chat_store
from server.domain.community import store as community_store
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.live import store as live_store
from server.domain.matching import store as matching_store
from server.domain.safety import store
from server.errors import BadRequest, NotFound
from server.ids import parse_id, require_id
from server.realtime.stream import Transaction

log = logging.getLogger(__name__)

HOUR_S = 3600.0

TargetOwner = Callable[[asyncpg.Connection, str, str], Awaitable[str | None]]
"""(conn, target id, reporter) → the user the target belongs to, or None if the reporter
cannot see it."""


def report_from(row: asyncpg.Record) -> Report:
    return Report(id=row["id"], status=ReportStatus(row["status"]),
                  target=ReportTarget(kind=ReportTargetKind(row["target_kind"]),
                                      id=row["target_id"]),
                  reason=ReportReason(row["reason"]), note=row["note"],
                  created_at=row["created_at"])


async def _user_owner(conn: asyncpg.Connection, user_id: str, reporter: str) -> str | None:
    # A user can be reported across a block (blocking and reporting a harasser go
    # together); what a block hides is their things, not that they exist.
    row = await store.select_user(conn, user_id)
    return None if row is None else str(row["id"])


async def _post_owner(conn: asyncpg.Connection, post_id: str, reporter: str) -> str | None:
    row = await community_store.select_visible_post(conn, post_id, reporter)
    return None if row is None else str(row["author_id"])


async def _comment_owner(conn: asyncpg.Connection, comment_id: str, reporter: str
                         ) -> str | None:
    row = await community_store.select_comment_state(conn, comment_id, reporter)
    return str(row["author_id"]) if row is not None and row["visible"] else None


async def _message_owner(conn: asyncpg.Connection, message_id: str, reporter: str
                         ) -> str | None:
    return await store.select_visible_message_sender(conn, message_id, reporter)


async def _listing_owner(conn: asyncpg.Connection, listing_id: str, reporter: str
                         ) -> str | None:
    row = await adoption_store.select_listing(conn, listing_id, reporter)
    return str(row["lister_id"]) if row is not None and listing_visible(row, reporter) else None


async def _live_owner(conn: asyncpg.Connection, stream_id: str, reporter: str) -> str | None:
    """The host of a stream the reporter may see (live or ended; not a banned or
    blocked host's)."""
    row = await live_store.select_stream(conn, stream_id, reporter)
    return str(row["host_id"]) if row is not None and not row["hidden"] else None


TARGET_OWNERS: dict[ReportTargetKind, TargetOwner] = {
    ReportTargetKind.USER: _user_owner,
    ReportTargetKind.POST: _post_owner,
    ReportTargetKind.COMMENT: _comment_owner,
    ReportTargetKind.MESSAGE: _message_owner,
    ReportTargetKind.LISTING: _listing_owner,
    ReportTargetKind.LIVE: _live_owner,
}

_NAMES = {ReportTargetKind.LIVE: "live stream"}


class SafetyService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.limiter = deps.limiter
        self.settings = deps.settings

    # --- blocks -------------------------------------------------------------------------

    async def block(self, user_id: str, other: str) -> Empty:
        target = require_id(other, "user_id", "no such user")
        if target == user_id:
            raise BadRequest("user_id: you cannot block yourself")
        async with self.stream.transaction() as tx:
            if await store.select_user(tx.conn, target) is None:
                raise NotFound("user_id: no such user")
            await store.lock_user_pair(tx.conn, user_id, target)
            if not await store.insert_block(tx.conn, user_id, target):
                return Empty()  # already blocked: nothing changes
            ended = await store.select_live_matches_between(tx.conn, user_id, target)
            for match in ended:  # exactly what matches.unmatch does
                await matching_store.update_match_unmatched(tx.conn, match["id"], user_id)
                await chat_store.update_conversation_closed(tx.conn, match["conversation_id"])
                await tx.append([match["user_a"], match["user_b"]],
                                ConversationClosed(seq=0,
                                                   conversation_id=match["conversation_id"]))
        log.info("user blocked", extra={"blocker_id": user_id, "blocked_id": target,
                                        "matches_ended": len(ended)})
        return Empty()

    async def unblock(self, user_id: str, other: str) -> Empty:
        target = parse_id(other)
        if target is not None and target != user_id:
            async with self.db.acquire() as conn:
                await store.delete_block(conn, user_id, target)
        return Empty()

    async def blocked(self, user_id: str, cursor: str | None, limit: int) -> BlockedResult:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, uid = decode_cursor(cursor, (datetime, str))
            after = (at, uid)
        async with self.db.acquire() as conn:
            rows = await store.select_blocked_users(conn, user_id, after=after,
                                                    limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return BlockedResult(
            users=[User(id=r["id"], display_name=r["display_name"], role=Role(r["role"]))
                   for r in rows],
            next_cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None)

    # --- reports ------------------------------------------------------------------------

    async def report(self, user_id: str, cmd: ReportsCreate) -> ReportResult:
        kind = cmd.target.kind
        name = _NAMES.get(kind, kind.value)

        async def work(tx: Transaction) -> ReportResult:
            target = parse_id(cmd.target.id)
            owner = (await TARGET_OWNERS[kind](tx.conn, target, user_id)
                     if target is not None else None)
            if target is None or owner is None:
                raise NotFound(f"target.id: no such {name}")
            if owner == user_id:
                raise BadRequest(f"target: you cannot report your own {name}"
                                 if kind is not ReportTargetKind.USER
                                 else "target: you cannot report yourself")
            existing = await store.select_open_report(tx.conn, reporter_id=user_id,
                                                      target_kind=kind.value,
                                                      target_id=target)
            if existing is not None:
                return ReportResult(report=report_from(existing))
            await self.limiter.take(f"reports.create:{user_id}",
                                    self.settings.reports_create_per_hour, HOUR_S,
                                    "too many reports; try again later")
            row = await store.insert_report(
                tx.conn, reporter_id=user_id, target_kind=kind.value, target_id=target,
                target_owner_id=owner, reason=cmd.reason.value, note=cmd.note)
            if row is None:  # a concurrent report of the same target won
                row = await store.select_open_report(tx.conn, reporter_id=user_id,
                                                     target_kind=kind.value, target_id=target)
                assert row is not None
            else:
                log.info("report filed", extra={"report_id": row["id"], "kind": kind.value,
                                                "target_id": target,
                                                "reason": cmd.reason.value})
            return ReportResult(report=report_from(row))

        return await run_idempotent(self.stream, user_id=user_id, scope="reports.create",
                                    key=cmd.idempotency_key, result_type=ReportResult,
                                    work=work)
