"""Plain SQL for users, sessions and refresh tokens. Functions are named for their SQL.

Each takes a connection (or the pool, for single statements); transactions are
the service's business. Ids cross this boundary as strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

Role = Literal["user", "admin"]
SessionKind = Literal["cookie", "token"]
Executor = Any  # asyncpg.Connection, a pool connection proxy or the pool itself


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    display_name: str
    role: Role
    password_hash: str
    created_at: datetime
    banned_at: datetime | None
    email_verified: bool = False
    deleted_at: datetime | None = None


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """What verifying a credential needs to know about its session, from one query."""

    session_id: str
    user_id: str
    role: Role
    created_at: datetime
    revoked: bool
    banned: bool


class RefreshRow(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    expires_at: datetime
    spent_at: datetime | None


_USER_COLUMNS = ("id::text, email, display_name, role, password_hash, created_at, banned_at, "
                 "email_verified, deleted_at")


def _user(record: asyncpg.Record) -> UserRow:
    return UserRow(**dict(record))


async def insert_user(
    db: Executor, *, email: str, display_name: str, password_hash: str, role: Role = "user"
) -> UserRow:
    """Raises ``asyncpg.UniqueViolationError`` when the email is taken."""
    record = await db.fetchrow(
        f"INSERT INTO users (email, display_name, password_hash, role) VALUES ($1, $2, $3, $4) "
        f"RETURNING {_USER_COLUMNS}",
        email, display_name, password_hash, role,
    )
    return _user(record)


async def select_user_by_email(db: Executor, email: str) -> UserRow | None:
    record = await db.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
    )
    return None if record is None else _user(record)


async def select_user(db: Executor, user_id: str) -> UserRow | None:
    record = await db.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if record is None else _user(record)


async def update_user_password_hash(db: Executor, user_id: str, password_hash: str) -> None:
    await db.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def update_user_banned(db: Executor, user_id: str, reason: str | None = None) -> bool:
    """Set banned_at (keeping the first ban's time) and the reason (a new one replaces
    the old); False if there is no such user."""
    status: str = await db.execute(
        "UPDATE users SET banned_at = coalesce(banned_at, now()), "
        "ban_reason = coalesce($2, ban_reason) WHERE id = $1",
        user_id, reason,
    )
    return status.endswith(" 1")


async def update_user_unbanned(db: Executor, user_id: str) -> bool:
    """Clear the ban; False if there is no such user."""
    status: str = await db.execute(
        "UPDATE users SET banned_at = NULL, ban_reason = NULL WHERE id = $1", user_id
    )
    return status.endswith(" 1")


async def insert_session(
    db: Executor, *, user_id: str, kind: SessionKind, user_agent: str | None, ip: str | None
) -> str:
    session_id: str = await db.fetchval(
        "INSERT INTO sessions (user_id, kind, user_agent, ip) VALUES ($1, $2, $3, $4::inet) "
        "RETURNING id::text",
        user_id, kind, user_agent, ip,
    )
    return session_id


async def select_session_state(db: Executor, session_id: str) -> SessionState | None:
    """One primary-key lookup joined to the user: revocation, ban and the current role."""
    record = await db.fetchrow(
        "SELECT s.id::text AS session_id, s.user_id::text AS user_id, u.role, s.created_at, "
        "s.revoked_at IS NOT NULL AS revoked, u.banned_at IS NOT NULL AS banned "
        "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        session_id,
    )
    return None if record is None else SessionState(**dict(record))


async def update_session_last_used(db: Executor, session_id: str) -> None:
    await db.execute("UPDATE sessions SET last_used_at = now() WHERE id = $1", session_id)


async def update_session_revoked(db: Executor, session_id: str) -> bool:
    """Revoke one session; False if it was already revoked (or does not exist)."""
    status: str = await db.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", session_id
    )
    return status.endswith(" 1")


async def update_sessions_revoked_for_user(db: Executor, user_id: str) -> list[str]:
    """Revoke every live session of a user; the ids revoked."""
    records = await db.fetch(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL "
        "RETURNING id::text AS id",
        user_id,
    )
    return [r["id"] for r in records]


async def insert_refresh_token(
    db: Executor, *, token_hash: bytes, session_id: str, expires_at: datetime
) -> None:
    await db.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        token_hash, session_id, expires_at,
    )


async def select_refresh_token_for_update(db: Executor, token_hash: bytes) -> RefreshRow | None:
    """Locks the row: two concurrent refreshes of one token are serialised, and the
    second sees it spent (reuse)."""
    record = await db.fetchrow(
        "SELECT session_id::text AS session_id, expires_at, spent_at FROM refresh_tokens "
        "WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )
    return None if record is None else RefreshRow(**dict(record))


async def select_refresh_token(db: Executor, token_hash: bytes) -> RefreshRow | None:
    record = await db.fetchrow(
        "SELECT session_id::text AS session_id, expires_at, spent_at FROM refresh_tokens "
        "WHERE token_hash = $1",
        token_hash,
    )
    return None if record is None else RefreshRow(**dict(record))


async def update_refresh_token_spent(
    db: Executor, token_hash: bytes, replaced_by: bytes | None
) -> None:
    await db.execute(
        "UPDATE refresh_tokens SET spent_at = now(), replaced_by = $2 WHERE token_hash = $1",
        token_hash, replaced_by,
    )


async def update_refresh_tokens_spent_for_session(db: Executor, session_id: str) -> None:
    """Spend every live token of a family (on revocation: none of them may refresh again)."""
    await db.execute(
        "UPDATE refresh_tokens SET spent_at = now() WHERE session_id = $1 AND spent_at IS NULL",
        session_id,
    )


async def update_sessions_revoked_for_user_except(db: Executor, user_id: str, keep: str
                                                  ) -> list[str]:
    """Revoke every live session of a user but ``keep``; the ids revoked."""
    records = await db.fetch(
        "UPDATE sessions SET revoked_at = now() "
        "WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2 RETURNING id::text AS id",
        user_id, keep,
    )
    return [r["id"] for r in records]


async def update_user_email_verified(db: Executor, user_id: str) -> None:
    await db.execute("UPDATE users SET email_verified = true WHERE id = $1", user_id)


async def select_user_for_update(db: Executor, user_id: str) -> UserRow | None:
    record = await db.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE", user_id
    )
    return None if record is None else _user(record)


# --- account tokens (e-mail verification, password reset) ---------------------------------

TokenPurpose = Literal["verify_email", "reset_password"]


class AccountTokenRow(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    purpose: TokenPurpose
    email: str
    expires_at: datetime
    used_at: datetime | None


async def insert_account_token(
    db: Executor, *, token_hash: bytes, user_id: str, purpose: TokenPurpose, email: str,
    expires_at: datetime,
) -> None:
    await db.execute(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        token_hash, user_id, purpose, email, expires_at,
    )


async def delete_dead_account_tokens(db: Executor, user_id: str) -> None:
    """Forget a user's spent and expired tokens (kept bounded as new ones are issued)."""
    await db.execute(
        "DELETE FROM account_tokens WHERE user_id = $1 "
        "AND (used_at IS NOT NULL OR expires_at < now())",
        user_id,
    )


async def select_account_token(db: Executor, token_hash: bytes, *, lock: bool = False
                               ) -> AccountTokenRow | None:
    record = await db.fetchrow(
        "SELECT user_id::text AS user_id, purpose, email, expires_at, used_at "
        f"FROM account_tokens WHERE token_hash = $1{' FOR UPDATE' if lock else ''}",
        token_hash,
    )
    return None if record is None else AccountTokenRow(**dict(record))


async def update_account_tokens_used(db: Executor, user_id: str, purpose: TokenPurpose) -> None:
    """Spend every live token of that purpose (the one used, and any other mailed)."""
    await db.execute(
        "UPDATE account_tokens SET used_at = now() "
        "WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user_id, purpose,
    )
