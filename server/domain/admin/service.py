"""Admin rules: users and bans, roles, the moderation queue and its decisions, the audit
log, analytics.

Who may call: nobody checks here. The composition root binds these handlers with the admin
guard (``server.domain.admin.guard.require_admin``), which refuses non-admins before any
handler runs.

Every method that changes something writes exactly one audit entry (``audit.record``) in
its own transaction; sockets are closed only after that transaction committed.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

import asyncpg

from protocol.admin import (
    AdminUser,
    AdminUsersResult,
    AnalyticsResult,
    AuditResult,
    ModerationDecision,
    ModerationItem,
    ModerationKind,
    ModerationQueueResult,
    ModerationStatus,
)
from protocol.codes import CloseCode
from protocol.objects import Role
from server.deps import Deps
from server.domain.admin import analytics, audit, store
from server.domain.admin.moderation import KINDS, Accounts, Context, Decision, Streams, ban_in
from server.domain.cursors import decode_cursor, encode_cursor
from server.errors import BadRequest, Conflict, NotFound
from server.ids import parse_id, require_id

log = logging.getLogger(__name__)


def admin_user_from_row(row: asyncpg.Record) -> AdminUser:
    return AdminUser(id=row["id"], display_name=row["display_name"], role=Role(row["role"]),
                     email=row["email"], email_verified=row["email_verified"],
                     created_at=row["created_at"], banned_at=row["banned_at"],
                     ban_reason=row["ban_reason"])


def _item(row: asyncpg.Record, preview: dict[str, Any]) -> ModerationItem:
    return ModerationItem(
        id=row["id"], kind=ModerationKind(row["kind"]), target_id=row["target_id"],
        status=ModerationStatus(row["status"]),
        reasons=list(row["reasons"]), report_count=row["report_count"],
        created_at=row["created_at"], resolved_at=row["resolved_at"],
        decision=None if row["decision"] is None else ModerationDecision(row["decision"]),
        decision_reason=row["decision_reason"],
        decided_by=row["decided_by"], preview=preview,
    )


class AdminService:
    def __init__(self, deps: Deps, accounts: Accounts, live: Streams) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.node = deps.node
        self.accounts = accounts
        self.ctx = Context(storage=deps.storage, presence=deps.presence, accounts=accounts,
                           live=live, url_ttl_s=deps.settings.upload_url_ttl_s)

    # --- users ----------------------------------------------------------------------------
    async def users(self, *, query: str | None, role: str | None, banned: bool | None,
                    cursor: str | None, limit: int) -> AdminUsersResult:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, uid = decode_cursor(cursor, (datetime, str))
            after = (at, uid)
        if query is not None and not query.strip():
            query = None
        rows = await store.select_users(self.db, query=query, role=role, banned=banned,
                                        after=after, limit=limit + 1)
        more = len(rows) > limit
        users = [admin_user_from_row(r) for r in rows[:limit]]
        next_cursor = (encode_cursor(users[-1].created_at, users[-1].id) if more and users
                       else None)
        return AdminUsersResult(users=users, next_cursor=next_cursor)

    async def _target_user(self, conn: asyncpg.Connection, user_id: str) -> asyncpg.Record:
        row = await store.select_user(conn, require_id(user_id, "user_id", "no such user"),
                                      for_update=True)
        if row is None:
            raise NotFound("user_id: no such user")
        return row

    async def ban(self, actor_id: str, user_id: str, reason: str) -> AdminUser:
        reason = reason.strip()
        if not reason:
            raise BadRequest("reason: must not be blank")
        target = require_id(user_id, "user_id", "no such user")
        if target == actor_id:
            raise BadRequest("user_id: you cannot ban yourself")
        async with self.stream.transaction() as tx:
            before = await self._target_user(tx.conn, target)
            _, ended, after_commit = await ban_in(tx.conn, self.ctx, target, reason)
            row = await store.select_user(tx.conn, target)
            assert row is not None
            await audit.record(tx.conn, actor_id=actor_id, action="admin.ban",
                               target_kind="user", target_id=target, reason=reason,
                               data={"changed": before["banned_at"] is None,
                                     "streams_ended": ended})
        for step in after_commit:  # live.ended to their viewers, then their sockets 4003
            await step()
        log.info("user banned", extra={"actor_id": actor_id, "user_id": target,
                                       "streams_ended": len(ended)})
        return admin_user_from_row(row)

    async def unban(self, actor_id: str, user_id: str) -> AdminUser:
        target = require_id(user_id, "user_id", "no such user")
        async with self.stream.transaction() as tx:
            before = await self._target_user(tx.conn, target)
            await self.accounts.unban_in(tx.conn, target)
            row = await store.select_user(tx.conn, target)
            assert row is not None
            await audit.record(tx.conn, actor_id=actor_id, action="admin.unban",
                               target_kind="user", target_id=target,
                               data={"changed": before["banned_at"] is not None})
        log.info("user unbanned", extra={"actor_id": actor_id, "user_id": target})
        return admin_user_from_row(row)

    async def set_role(self, actor_id: str, user_id: str, role: str) -> AdminUser:
        target = require_id(user_id, "user_id", "no such user")
        if target == actor_id:
            raise BadRequest("user_id: you cannot change your own role")
        async with self.stream.transaction() as tx:
            before = await self._target_user(tx.conn, target)
            changed = before["role"] != role
            if changed:
                await store.update_user_role(tx.conn, target, role)
            row = await store.select_user(tx.conn, target)
            assert row is not None
            await audit.record(tx.conn, actor_id=actor_id, action="admin.set_role",
                               target_kind="user", target_id=target,
                               data={"role": role, "previous": before["role"],
                                     "changed": changed})
        if changed:
            # Admin commands re-read the role anyway (the guard); closing the sockets makes
            # every other role-dependent check (e.g. "author or admin") see it too: the
            # client reconnects and its new socket carries the new role.
            await self.node.kick(user_ids=(target,), code=CloseCode.NOT_AUTHENTICATED,
                                 reason="role changed")
            log.info("role changed", extra={"actor_id": actor_id, "user_id": target,
                                            "role": role})
        return admin_user_from_row(row)

    # --- the moderation queue -----------------------------------------------------------------
    async def queue(self, *, kind: str | None, status: str, cursor: str | None, limit: int
                    ) -> ModerationQueueResult:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, iid = decode_cursor(cursor, (datetime, str))
            after = (at, iid)
        async with self.db.acquire() as conn:
            rows = await store.select_items(conn, kind=kind, status=status, after=after,
                                            limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            previews = await self._previews(conn, rows)
        items = [_item(r, previews.get((r["kind"], r["target_id"]), {})) for r in rows]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            at = last["created_at"] if status == "open" else last["resolved_at"]
            next_cursor = encode_cursor(at, last["id"])
        return ModerationQueueResult(items=items, next_cursor=next_cursor)

    async def _previews(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]
                        ) -> dict[tuple[str, str], dict[str, Any]]:
        """One query per kind on the page."""
        by_kind: dict[str, list[str]] = {}
        for r in rows:
            by_kind.setdefault(r["kind"], []).append(r["target_id"])
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, ids in by_kind.items():
            for target_id, preview in (await KINDS[kind].preview(conn, self.ctx, ids)).items():
                out[(kind, target_id)] = preview
        return out

    async def decide(self, actor_id: str, item_id: str, verdict: str, reason: str | None
                     ) -> ModerationItem:
        item_key = require_id(item_id, "item_id", "no such moderation item")
        reason = (reason or "").strip() or None
        async with self.stream.transaction() as tx:
            current = await store.select_item_for_update(tx.conn, item_key)
            if current is None:
                raise NotFound("item_id: no such moderation item")
            if current["status"] != "open":
                raise Conflict(f"item_id: already decided ({current['decision']})")
            kind = current["kind"]
            # Resolve first: a decision on an upload changes its status, and the uploads
            # trigger then finds no open item to resolve on its own.
            resolved = await store.update_item_resolved(
                tx.conn, item_key, decision=verdict, reason=reason, decided_by=actor_id)
            decision = Decision(tx=tx, ctx=self.ctx, actor_id=actor_id, item_id=item_key,
                                kind=kind, target_id=current["target_id"],
                                verdict="approve" if verdict == "approve" else "reject",
                                reason=reason, reasons=list(current["reasons"]))
            applied = await KINDS[kind].decide(decision)
            reports = await store.update_reports_resolved(tx.conn, kind, current["target_id"])
            await audit.record(tx.conn, actor_id=actor_id, action="admin.moderation.decide",
                               target_kind=kind, target_id=current["target_id"],
                               reason=reason,
                               data={"item_id": item_key, "decision": verdict,
                                     "reports_resolved": reports, **applied})
            previews = await self._previews(tx.conn, [resolved])
        for step in decision.after_commit:
            await step()
        log.info("moderation decided", extra={"actor_id": actor_id, "item_id": item_key,
                                              "kind": kind, "decision": verdict})
        return _item(resolved, previews.get((kind, resolved["target_id"]), {}))

    # --- the audit log ----------------------------------------------------------------------
    async def audit(self, *, actor_id: str | None, action: str | None, target_id: str | None,
                    cursor: str | None, limit: int) -> AuditResult:
        actor = None
        if actor_id is not None:
            actor = parse_id(actor_id)
            if actor is None:  # like any unknown id: no entries (server/ids.py)
                return AuditResult(entries=[])
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, eid = decode_cursor(cursor, (datetime, str))
            after = (at, eid)
        rows = await audit.select_entries(self.db, actor_id=actor, action=action,
                                          target_id=target_id, after=after, limit=limit + 1)
        more = len(rows) > limit
        entries = [audit.entry_from_row(r) for r in rows[:limit]]
        next_cursor = (encode_cursor(entries[-1].created_at, entries[-1].id)
                       if more and entries else None)
        return AuditResult(entries=entries, next_cursor=next_cursor)

    # --- analytics --------------------------------------------------------------------------
    async def analytics(self, first: date, last: date) -> AnalyticsResult:
        if last < first:
            raise BadRequest("to: must not be before from")
        days = (last - first).days + 1
        if days > analytics.MAX_DAYS:
            raise BadRequest(f"to: at most {analytics.MAX_DAYS} days from 'from' "
                             f"({days} asked)")
        async with self.db.acquire() as conn:
            return AnalyticsResult(days=await analytics.daily_counts(conn, first, last))
