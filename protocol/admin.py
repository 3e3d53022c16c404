"""Admin and moderation (PROTOCOL §10.4): users and bans, the moderation queue, analytics,
the audit log. Every command here is for role ``admin`` only: anyone else is answered
``forbidden`` whatever the ids (the server checks the role before looking anything up).

Feature flags (``admin.flags.*``, ``flags.get``, ``flags.updated``) are in ``protocol.flags``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from protocol.base import Command, Result
from protocol.objects import Role, _Object
from protocol.types import Cursor, DisplayName, Id, PageLimit100, Timestamp

BanReason = Annotated[str, Meta(min_length=1, max_length=500)]
DecisionReason = Annotated[str, Meta(max_length=500)]
SearchQuery = Annotated[str, Meta(min_length=1, max_length=100)]
"""Substring of an email or display name, case-insensitive."""
AuditAction = Annotated[str, Meta(min_length=1, max_length=64)]
AuditTarget = Annotated[str, Meta(min_length=1, max_length=64)]


class ModerationKind(StrEnum):
    """What a moderation item is about."""

    UPLOAD = "upload"
    USER = "user"
    POST = "post"
    COMMENT = "comment"
    MESSAGE = "message"
    LISTING = "listing"
    LIVE = "live"


class ModerationStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ModerationDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


# --- objects ------------------------------------------------------------------------------

class AdminUser(_Object, kw_only=True):
    """A user as admins see them: the public ``user`` plus account fields."""

    id: Id
    display_name: DisplayName
    role: Role
    email: str
    email_verified: bool
    created_at: Timestamp
    banned_at: Timestamp | None = None
    ban_reason: BanReason | None = None


class ModerationItem(_Object, kw_only=True):
    """One target under review: a pending upload or a reported thing. ``reasons`` are the
    distinct report reasons (empty for uploads); ``preview`` shows the target (its keys
    depend on ``kind``)."""

    id: Id
    kind: ModerationKind
    target_id: Id
    status: ModerationStatus
    reasons: list[str]
    report_count: Annotated[int, Meta(ge=0)]
    created_at: Timestamp
    resolved_at: Timestamp | None = None
    decision: ModerationDecision | None = None
    decision_reason: DecisionReason | None = None
    decided_by: Id | None = None
    """The deciding admin; absent for a decision of the automatic upload check."""
    preview: dict[str, Any]


class AuditEntry(_Object, kw_only=True):
    """One admin change. ``actor_id`` is null for the command line (``create-admin``)."""

    id: Id
    actor_id: Id | None
    action: AuditAction
    target_kind: Annotated[str, Meta(min_length=1, max_length=32)]
    target_id: AuditTarget
    reason: DecisionReason | None = None
    data: dict[str, Any]
    created_at: Timestamp


class AnalyticsDay(_Object, kw_only=True):
    """Counts for one UTC day."""

    date: date
    active_users: int
    new_users: int
    messages: int
    matches: int
    lost_alerts: int
    uploads: int
    posts: int
    adoptions: int


# --- results --------------------------------------------------------------------------------

class AdminUsersResult(Result, kw_only=True):
    users: list[AdminUser]
    """Newest account first."""
    next_cursor: Cursor | None = None


class AdminUserResult(Result, kw_only=True):
    user: AdminUser


class ModerationQueueResult(Result, kw_only=True):
    items: list[ModerationItem]
    """Open items oldest first; resolved items most recently resolved first."""
    next_cursor: Cursor | None = None


class ModerationItemResult(Result, kw_only=True):
    item: ModerationItem


class AnalyticsResult(Result, kw_only=True):
    days: list[AnalyticsDay]
    """One per day from ``from`` to ``to``, zeros included."""


class AuditResult(Result, kw_only=True):
    entries: list[AuditEntry]
    """Newest first."""
    next_cursor: Cursor | None = None


# --- commands -------------------------------------------------------------------------------

class AdminUsers(Command, tag="admin.users", kw_only=True):
    """Search accounts: ``query`` is a case-insensitive substring of the email or the
    display name; ``role`` and ``banned`` filter."""

    query: SearchQuery | None = None
    role: Role | None = None
    banned: bool | None = None
    cursor: Cursor | None = None
    limit: PageLimit100 = 50
    result_type = AdminUsersResult


class AdminBan(Command, tag="admin.ban", kw_only=True):
    """Ban a user: every socket closes 4003 on every node, tokens, cookie and login are
    refused (403), their pets (and listings, posts, streams) are hidden from others.
    Not oneself (``bad_request``). Banning a banned user keeps the first ban's time and
    sets the new reason."""

    user_id: Id
    reason: BanReason
    result_type = AdminUserResult


class AdminUnban(Command, tag="admin.unban", kw_only=True):
    """Lift a ban. The user logs in again (a ban revoked every session)."""

    user_id: Id
    result_type = AdminUserResult


class AdminSetRole(Command, tag="admin.set_role", kw_only=True):
    """Make a user an admin or a plain user. Not one's own role (``bad_request``). A
    change closes the user's sockets with 4001 so that they reconnect with the new role."""

    user_id: Id
    role: Role
    result_type = AdminUserResult


class AdminModerationQueue(Command, tag="admin.moderation.queue", kw_only=True):
    """The moderation queue: each target under review once."""

    kind: ModerationKind | None = None
    status: ModerationStatus = ModerationStatus.OPEN
    cursor: Cursor | None = None
    limit: PageLimit100 = 50
    result_type = ModerationQueueResult


class AdminModerationDecide(Command, tag="admin.moderation.decide", kw_only=True):
    """Decide an open item, in one transaction (a decided item is ``conflict``)."""

    item_id: Id
    decision: ModerationDecision
    reason: DecisionReason | None = None
    result_type = ModerationItemResult


class AdminAnalytics(Command, tag="admin.analytics", kw_only=True):
    """Daily counts, computed when asked. ``from`` and ``to`` are UTC dates, both
    included, at most 92 days (else ``bad_request``)."""

    from_: date = msgspec.field(name="from")
    to: date
    result_type = AnalyticsResult


class AdminAudit(Command, tag="admin.audit", kw_only=True):
    """The audit log, newest first, filtered by actor, action (a command tag such as
    ``admin.ban``) and target id."""

    actor_id: Id | None = None
    action: AuditAction | None = None
    target_id: AuditTarget | None = None
    cursor: Cursor | None = None
    limit: PageLimit100 = 50
    result_type = AuditResult
