"""Safety (PROTOCOL §10.3): blocking users and reporting things for moderation."""

from __future__ import annotations

from enum import StrEnum

from protocol.base import Command, Empty, Result
from protocol.objects import User, _Object
from protocol.types import Cursor, Id, IdempotencyKey, Note, PageLimit50, Timestamp


class ReportTargetKind(StrEnum):
    USER = "user"
    POST = "post"
    COMMENT = "comment"
    MESSAGE = "message"
    LISTING = "listing"
    LIVE = "live"


class ReportReason(StrEnum):
    SPAM = "spam"
    HARASSMENT = "harassment"
    NUDITY = "nudity"
    VIOLENCE = "violence"
    SCAM = "scam"
    ANIMAL_WELFARE = "animal_welfare"
    OTHER = "other"


class ReportStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ReportTarget(_Object, kw_only=True):
    """What a report is about: a user, or one of their posts, comments, chat messages,
    adoption listings or live streams."""

    kind: ReportTargetKind
    id: Id


class Report(_Object, kw_only=True):
    """A report as its reporter sees it. The moderation queue (§10.4) groups reports of
    one target into one item."""

    id: Id
    status: ReportStatus
    target: ReportTarget
    reason: ReportReason
    note: Note | None = None
    created_at: Timestamp


class BlockedResult(Result, kw_only=True):
    users: list[User]
    """The users the caller blocked, most recent block first (never who blocked them)."""
    next_cursor: Cursor | None = None


class ReportResult(Result, kw_only=True):
    report: Report


class UsersBlock(Command, tag="users.block", kw_only=True):
    """Block a user: from then on neither sees the other's pets, listings, posts,
    comments, live streams or presence, and neither can message or apply to the other.
    Live matches between them end (``conversation.closed`` to both). The blocked user is
    told nothing. Repeating is a no-op."""

    user_id: Id
    result_type = Empty


class UsersUnblock(Command, tag="users.unblock", kw_only=True):
    """Lift the caller's block of a user (a block the other user made stays). Ended
    matches stay ended. Repeating, or a user not blocked, is a no-op."""

    user_id: Id
    result_type = Empty


class UsersBlocked(Command, tag="users.blocked", kw_only=True):
    """The users the caller blocked, most recent first."""

    cursor: Cursor | None = None
    limit: PageLimit50 = 50
    result_type = BlockedResult


class ReportsCreate(Command, tag="reports.create", kw_only=True):
    """Report something the caller can see (else ``not_found``). While the caller's report
    of the same target is open, the same report is returned again."""

    target: ReportTarget
    reason: ReportReason
    note: Note | None = None
    idempotency_key: IdempotencyKey | None = None
    result_type = ReportResult
