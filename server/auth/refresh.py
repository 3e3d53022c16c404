"""Opaque refresh tokens: issued per login, rotated on every use, reuse revokes the family.

A token is 32 random bytes (URL-safe base64); only its SHA-256 is stored. The
family of a token is its session: every token rotated from one login shares
the session id and the family's absolute expiry.

Rotation (``rotate``) runs in one transaction with the presented token's row
locked, so of two concurrent refreshes with one token exactly one succeeds and
the other is treated as reuse.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from server.auth import store
from server.auth.store import Executor, SessionState
from server.errors import AccountBanned, InvalidCredential


class RefreshReused(InvalidCredential):
    """A spent token was presented again: someone else holds a copy. Revoke its family."""

    def __init__(self, session_id: str) -> None:
        super().__init__("refresh token was already used: the session is revoked")
        self.session_id = session_id


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh token and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def issue(conn: Executor, session_id: str, expires_at: datetime) -> str:
    """The first token of a family (at login)."""
    token, token_hash = new_refresh_token()
    await store.insert_refresh_token(
        conn, token_hash=token_hash, session_id=session_id, expires_at=expires_at
    )
    return token


async def rotate(conn: Executor, token: str) -> tuple[SessionState, str]:
    """Spend ``token`` and return its session and the next token of the family.

    Must run inside a transaction. Raises ``RefreshReused`` for a spent token
    (the caller revokes the family in a transaction of its own, since this one
    rolls back), ``InvalidCredential`` for an unknown or expired token or a
    revoked session, ``AccountBanned`` for a banned user.
    """
    old_hash = hash_refresh_token(token)
    row = await store.select_refresh_token_for_update(conn, old_hash)
    if row is None:
        raise InvalidCredential()
    state = await store.select_session_state(conn, row.session_id)
    if state is None:
        raise InvalidCredential()
    # A ban or a revocation explains a spent token (logout, an earlier reuse): only a
    # spent token of a live session is a stolen copy.
    if state.banned:
        raise AccountBanned()
    if state.revoked:
        raise InvalidCredential()
    if row.spent_at is not None:
        raise RefreshReused(row.session_id)
    if row.expires_at <= datetime.now(UTC):
        raise InvalidCredential()
    new_token, new_hash = new_refresh_token()
    await store.insert_refresh_token(
        conn, token_hash=new_hash, session_id=row.session_id, expires_at=row.expires_at
    )
    await store.update_refresh_token_spent(conn, old_hash, replaced_by=new_hash)
    await store.update_session_last_used(conn, row.session_id)
    return state, new_token


async def revoke_family(conn: Executor, session_id: str) -> bool:
    """Revoke the session and spend every token of its family. Must run in a transaction.
    False if the session was already revoked."""
    revoked = await store.update_session_revoked(conn, session_id)
    await store.update_refresh_tokens_spent_for_session(conn, session_id)
    return revoked
