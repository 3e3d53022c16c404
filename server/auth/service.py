"""Account and session rules: register, login, refresh, logout, ban.

Functions take the ``AuthDeps`` bundle (``app[AUTH]``) and raise typed errors
the HTTP layer maps in one place: ``InvalidField``/``BadRequest`` (400),
``InvalidCredential`` (401), ``AccountBanned`` (403), ``Conflict`` (409),
``RateLimited`` (429). Every change that spans rows runs in one transaction.

Sockets of a revoked session are closed on every node through ``kick``:
logout and refresh-token reuse close 4001 (get new credentials), a ban 4003
(do not reconnect).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
import msgspec
from aiohttp import web

from server.auth import policy, refresh, store
from server.auth.passwords import Passwords
from server.auth.principal import AccountBanned, InvalidCredential
from server.auth.store import Executor, SessionKind, UserRow
from server.auth.tokens import AccessTokens
from server.domain.errors import Conflict, RateLimited
from server.ratelimit import RateLimiter
from server.settings import Settings

log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "wrong email or password"
CLOSE_REVOKED = 4001
CLOSE_BANNED = 4003


class Kicker(Protocol):
    async def __call__(
        self,
        *,
        session_ids: tuple[str, ...] = (),
        user_ids: tuple[str, ...] = (),
        code: int = ...,
        reason: str = ...,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class AuthDeps:
    db: Executor
    settings: Settings
    passwords: Passwords
    tokens: AccessTokens
    limiter: RateLimiter
    kick: Kicker


AUTH = web.AppKey("auth", AuthDeps)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login comes from: rate-limit key and the session row's columns."""

    address: str | None
    user_agent: str | None
    kind: SessionKind


class AuthResult(msgspec.Struct, frozen=True, kw_only=True):
    user: UserRow
    session_id: str
    access_token: str
    expires_at: datetime
    """When ``access_token`` expires."""
    refresh_token: str


def _deps(app_or_deps: web.Application | AuthDeps) -> AuthDeps:
    return app_or_deps if isinstance(app_or_deps, AuthDeps) else app_or_deps[AUTH]


def _digest(value: str) -> str:
    # Rate-limit keys live in Redis: no emails in clear there.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def login_keys(email: str, address: str | None) -> tuple[str, str]:
    """The two failed-login counters: per (normalised) email and per client address."""
    return f"login:email:{_digest(email)}", f"login:addr:{address or 'unknown'}"


async def register(
    deps: AuthDeps, *, email: str, password: str, display_name: str, client: ClientInfo
) -> AuthResult:
    email = policy.check_email(email)
    policy.check_password(password, email)
    display_name = policy.check_display_name(display_name)
    settings = deps.settings
    decision = await deps.limiter.hit(
        f"register:addr:{client.address or 'unknown'}", settings.auth_register_per_hour, 3600
    )
    if not decision.allowed:
        raise RateLimited("too many registrations from this address", decision.retry_after_s)
    password_hash = await deps.passwords.hash(password)
    async with deps.db.acquire() as conn, conn.transaction():
        try:
            user = await store.insert_user(
                conn, email=email, display_name=display_name, password_hash=password_hash
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("email: already registered") from None
        return await _start_session(deps, conn, user, client)


async def login(deps: AuthDeps, *, email: str, password: str, client: ClientInfo) -> AuthResult:
    settings = deps.settings
    limit, window = settings.auth_login_max_failures, float(settings.auth_login_window_s)
    email = policy.normalise_email(email)
    keys = login_keys(email, client.address)
    decisions = [await deps.limiter.peek(key, limit, window) for key in keys]
    refused = [d for d in decisions if not d.allowed]
    if refused:
        retry = max(d.retry_after_s for d in refused)
        raise RateLimited("too many failed logins; retry later", retry)

    user = await store.select_user_by_email(deps.db, email)
    if user is None:
        await deps.passwords.burn(password)  # same time as a wrong password
        verified = False
    else:
        verified = await deps.passwords.verify(user.password_hash, password)
    if user is None or not verified:
        for key in keys:
            await deps.limiter.hit(key, limit, window)
        raise InvalidCredential(WRONG_CREDENTIALS)
    # Only after the password: otherwise anyone could probe which emails are banned.
    if user.banned_at is not None:
        raise AccountBanned()
    await deps.limiter.reset(keys[0])
    if deps.passwords.needs_rehash(user.password_hash):
        # Cost settings changed since this hash was made: upgrade it while we hold the password.
        await store.update_user_password_hash(
            deps.db, user.id, await deps.passwords.hash(password)
        )
    async with deps.db.acquire() as conn, conn.transaction():
        return await _start_session(deps, conn, user, client)


async def refresh_session(deps: AuthDeps, refresh_token: str) -> AuthResult:
    """Rotate a refresh token. A spent token revokes its whole family (and closes its sockets)."""
    try:
        async with deps.db.acquire() as conn, conn.transaction():
            state, new_token = await refresh.rotate(conn, refresh_token)
            user = await store.select_user(conn, state.user_id)
    except refresh.RefreshReused as exc:
        log.warning("refresh token reused: session revoked", extra={"session": exc.session_id})
        await revoke_session(deps, exc.session_id, reason="refresh token reused")
        raise
    if user is None:  # deleted between the two statements: cannot happen with the FK, but be sure
        raise InvalidCredential()
    access_token, expires_at = deps.tokens.issue(
        user_id=user.id, role=user.role, session_id=state.session_id
    )
    return AuthResult(
        user=user,
        session_id=state.session_id,
        access_token=access_token,
        expires_at=expires_at,
        refresh_token=new_token,
    )


async def logout(
    deps: AuthDeps,
    *,
    session_id: str | None,
    user_id: str | None,
    refresh_token: str | None,
) -> bool:
    """Revoke the caller's session and the refresh token's family.

    The refresh token's family is revoked only if it is the caller's (same user)
    or if there is no authenticated caller: holding the token is then the proof.
    False when nothing could be identified to revoke."""
    session_ids: list[str] = [session_id] if session_id else []
    if refresh_token:
        row = await store.select_refresh_token(deps.db, refresh.hash_refresh_token(refresh_token))
        if row is not None and row.session_id not in session_ids:
            state = await store.select_session_state(deps.db, row.session_id)
            if state is not None and (user_id is None or state.user_id == user_id):
                session_ids.append(row.session_id)
    for sid in session_ids:
        await revoke_session(deps, sid, reason="logout")
    return bool(session_ids)


async def revoke_session(
    deps: AuthDeps, session_id: str, *, reason: str, code: int = CLOSE_REVOKED
) -> None:
    """Revoke one session with its refresh family, and close its sockets on every node."""
    async with deps.db.acquire() as conn, conn.transaction():
        await refresh.revoke_family(conn, session_id)
    await deps.kick(session_ids=(session_id,), code=code, reason=reason)


async def ban_user(app_or_deps: web.Application | AuthDeps, user_id: str) -> bool:
    """Ban a user: set banned_at, revoke every session and family, close their sockets 4003.

    Idempotent; False if there is no such user."""
    deps = _deps(app_or_deps)
    try:
        uuid.UUID(user_id)
    except ValueError:
        return False
    async with deps.db.acquire() as conn, conn.transaction():
        if not await store.update_user_banned(conn, user_id):
            return False
        for sid in await store.update_sessions_revoked_for_user(conn, user_id):
            await store.update_refresh_tokens_spent_for_session(conn, sid)
    await deps.kick(user_ids=(user_id,), code=CLOSE_BANNED, reason="banned")
    return True


async def get_user(deps: AuthDeps, user_id: str) -> UserRow:
    user = await store.select_user(deps.db, user_id)
    if user is None:
        raise InvalidCredential()
    return user


async def _start_session(
    deps: AuthDeps, conn: Executor, user: UserRow, client: ClientInfo
) -> AuthResult:
    session_id = await store.insert_session(
        conn,
        user_id=user.id,
        kind=client.kind,
        user_agent=client.user_agent,
        ip=client.address,
    )
    family_expires = datetime.now(UTC) + timedelta(seconds=deps.settings.refresh_token_ttl_s)
    refresh_token = await refresh.issue(conn, session_id, family_expires)
    access_token, expires_at = deps.tokens.issue(
        user_id=user.id, role=user.role, session_id=session_id
    )
    return AuthResult(
        user=user,
        session_id=session_id,
        access_token=access_token,
        expires_at=expires_at,
        refresh_token=refresh_token,
    )
