"""Account and session rules: register, login, refresh, logout, ban and unban.

``AuthService`` raises the kernel's errors (``server.errors``), which each edge maps in
one place: ``BadRequest`` (400), ``InvalidCredential`` (401), ``AccountBanned`` (403),
``Conflict`` (409), ``RateLimited`` (429). Every change that spans rows runs in one
transaction.

Sockets of a revoked session are closed on every node through ``kick``:
logout and refresh-token reuse close 4001 (get new credentials), a ban 4003
(do not reconnect).

Login throttling (README Authentication, "Throttling"): every attempt is *reserved*
under its limits before the password is hashed (``server.resources.ratelimit.reserve``),
so a burst of concurrent guesses can never get more checks than the limits allow; a
successful attempt is released again. The limits, per ``AUTH_LOGIN_WINDOW_S``:

- a client with a known-device token of the account (``server.auth.devices``): its own
  ``AUTH_LOGIN_MAX_FAILURES`` per device, plus the address limit;
- any other client: ``AUTH_LOGIN_MAX_FAILURES`` per (email, address) pair,
  ``AUTH_LOGIN_ADDRESS_MAX_FAILURES`` per address, ``AUTH_LOGIN_EMAIL_MAX_FAILURES``
  per email. Strangers can fill the last one, but only for clients that never signed
  in: the owner's known devices keep working, and the reset link always does.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from protocol.codes import CloseCode
from server.auth import policy, refresh, store
from server.auth.devices import DeviceTokens, KnownDevice
from server.auth.passwords import Passwords
from server.auth.store import Executor, SessionKind, UserRow
from server.auth.tokens import AccessTokens
from server.deps import Deps
from server.errors import AccountBanned, Conflict, InvalidCredential, RateLimited
from server.ids import parse_id
from server.resources.ratelimit import Limit, reserve

log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "wrong email or password"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login comes from: rate-limit key and the session row's columns."""

    address: str | None
    user_agent: str | None
    kind: SessionKind
    device_token: str | None = None
    """The known-device token the client presented (cookie or login body), if any."""


class AuthResult(msgspec.Struct, frozen=True, kw_only=True):
    user: UserRow
    session_id: str
    access_token: str
    expires_at: datetime
    """When ``access_token`` expires."""
    refresh_token: str
    device_token: str | None = None
    """Register and login: a fresh known-device token for this client."""


def _digest(value: str) -> str:
    # Rate-limit keys live in Redis: no emails in clear there.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


ACCOUNT_THROTTLED = ("too many failed logins for this account: sign in from a device you "
                     "used before, or reset your password")
THROTTLED = "too many failed logins; retry later"


def email_key(email: str) -> str:
    """The per-email failed-login counter (of clients without a known-device token)."""
    return f"login:email:{_digest(email)}"


def _pair_key(email: str, address: str | None) -> str:
    where = address or "unknown"
    return f"login:pair:{_digest(email + ' ' + where)}"


class AuthService:
    """Accounts and sessions. Built by the composition root from the bundle."""

    def __init__(self, deps: Deps, *, passwords: Passwords, tokens: AccessTokens,
                 devices: DeviceTokens) -> None:
        self.db = deps.db
        self.settings = deps.settings
        self.limiter = deps.limiter
        self.node = deps.node
        self.passwords = passwords
        self.tokens = tokens
        self.devices = devices

    async def register(
        self, *, email: str, password: str, display_name: str, client: ClientInfo
    ) -> AuthResult:
        email = policy.check_email(email)
        policy.check_password(password, email)
        display_name = policy.check_display_name(display_name)
        settings = self.settings
        decision = await self.limiter.hit(
            f"register:addr:{client.address or 'unknown'}", settings.auth_register_per_hour, 3600
        )
        if not decision.allowed:
            raise RateLimited("too many registrations from this address", decision.retry_after_s)
        password_hash = await self.passwords.hash(password)
        async with self.db.acquire() as conn, conn.transaction():
            try:
                user = await store.insert_user(
                    conn, email=email, display_name=display_name, password_hash=password_hash
                )
            except asyncpg.UniqueViolationError:
                raise Conflict("email: already registered") from None
            result = await self._start_session(conn, user, client)
        return msgspec.structs.replace(result, device_token=self.devices.issue(user.id))

    def _login_limits(self, email: str, address: str | None, device: KnownDevice | None
                      ) -> list[Limit]:
        settings = self.settings
        window = float(settings.auth_login_window_s)
        per_address = Limit(f"login:addr:{address or 'unknown'}",
                            settings.auth_login_address_max_failures, window)
        if device is not None:
            return [Limit(f"login:device:{device.nonce}", settings.auth_login_max_failures,
                          window), per_address]
        return [Limit(_pair_key(email, address), settings.auth_login_max_failures, window),
                per_address,
                Limit(email_key(email), settings.auth_login_email_max_failures, window)]

    async def login(self, *, email: str, password: str, client: ClientInfo) -> AuthResult:
        email = policy.normalise_email(email)
        user = await store.select_user_by_email(self.db, email)
        device = self.devices.verify(client.device_token)
        if device is not None and (user is None or device.user_id != user.id):
            device = None  # another account's device is a stranger to this one
        limits = self._login_limits(email, client.address, device)
        # Reserved before hashing: a burst of concurrent guesses gets no more checks than
        # the limits allow, whatever their timing.
        attempt = await reserve(self.limiter, limits)
        if not attempt.allowed:
            message = ACCOUNT_THROTTLED if attempt.refused is limits[-1] and device is None \
                else THROTTLED
            log.info("login throttled", extra={"limit": (attempt.refused.key.split(":")[1]
                                                         if attempt.refused else None),
                                               "known_device": device is not None})
            raise RateLimited(message, attempt.retry_after_s)
        try:
            if user is None:
                await self.passwords.burn(password)  # same time as a wrong password
                verified = False
            else:
                verified = await self.passwords.verify(user.password_hash, password)
        except BaseException:
            await attempt.release()  # never checked (busy, cancelled): not a failure
            raise
        if user is None or not verified:
            raise InvalidCredential(WRONG_CREDENTIALS)  # the reservation stays: one failure
        await attempt.release()
        # Only after the password: otherwise anyone could probe which emails are banned.
        if user.banned_at is not None:
            raise AccountBanned()
        await self.limiter.reset(_pair_key(email, client.address))
        if device is not None:
            # The owner, on a device they used before: what strangers piled up is cleared.
            await self.limiter.reset(email_key(email))
            await self.limiter.reset(limits[0].key)
        if self.passwords.needs_rehash(user.password_hash):
            # Cost settings changed since this hash was made: upgrade it while we hold the password.
            await store.update_user_password_hash(
                self.db, user.id, await self.passwords.hash(password)
            )
        async with self.db.acquire() as conn, conn.transaction():
            result = await self._start_session(conn, user, client)
        return msgspec.structs.replace(result, device_token=self.devices.issue(user.id))

    async def clear_login_failures(self, email: str) -> None:
        """Forget the per-email failures (the owner proved themselves another way, e.g.
        with the reset link)."""
        await self.limiter.reset(email_key(policy.normalise_email(email)))

    async def refresh_session(self, refresh_token: str) -> AuthResult:
        """Rotate a refresh token. A spent token revokes its whole family (and closes its
        sockets)."""
        try:
            async with self.db.acquire() as conn, conn.transaction():
                state, new_token = await refresh.rotate(conn, refresh_token)
                user = await store.select_user(conn, state.user_id)
        except refresh.RefreshReused as exc:
            log.warning("refresh token reused: session revoked",
                        extra={"session": exc.session_id})
            await self.revoke_session(exc.session_id, reason="refresh token reused")
            raise
        if user is None:  # deleted between the two statements: cannot with the FK, but be sure
            raise InvalidCredential()
        access_token, expires_at = self.tokens.issue(
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
        self,
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
            row = await store.select_refresh_token(
                self.db, refresh.hash_refresh_token(refresh_token))
            if row is not None and row.session_id not in session_ids:
                state = await store.select_session_state(self.db, row.session_id)
                if state is not None and (user_id is None or state.user_id == user_id):
                    session_ids.append(row.session_id)
        for sid in session_ids:
            await self.revoke_session(sid, reason="logout")
        return bool(session_ids)

    async def revoke_session(
        self, session_id: str, *, reason: str, code: CloseCode = CloseCode.NOT_AUTHENTICATED
    ) -> None:
        """Revoke one session with its refresh family, and close its sockets on every node."""
        async with self.db.acquire() as conn, conn.transaction():
            await refresh.revoke_family(conn, session_id)
        await self.node.kick(session_ids=(session_id,), code=code, reason=reason)

    async def ban_user(self, user_id: str, reason: str | None = None) -> bool:
        """Ban a user: set banned_at (and the reason), revoke every session and family,
        close their sockets 4003 on every node.

        Idempotent; False if there is no such user."""
        if parse_id(user_id) is None:
            return False
        async with self.db.acquire() as conn, conn.transaction():
            if not await self.ban_in(conn, user_id, reason):
                return False
        await self.close_banned_sockets(user_id)
        return True

    async def ban_in(self, conn: Executor, user_id: str, reason: str | None) -> bool:
        """``ban_user``'s database part, inside the caller's transaction (so an admin
        command writes its audit entry atomically with the ban). After commit the caller
        must call ``close_banned_sockets``. False if there is no such user."""
        if not await store.update_user_banned(conn, user_id, reason):
            return False
        for sid in await store.update_sessions_revoked_for_user(conn, user_id):
            await store.update_refresh_tokens_spent_for_session(conn, sid)
        return True

    async def close_banned_sockets(self, user_id: str) -> None:
        """Close every socket of a (just committed) banned user with 4003, on every node.
        Credentials are refused from the commit on anyway (the verifier reads the ban)."""
        await self.node.kick(user_ids=(user_id,), code=CloseCode.FORBIDDEN, reason="banned")

    async def unban_in(self, conn: Executor, user_id: str) -> bool:
        """Lift a ban inside the caller's transaction. The sessions the ban revoked stay
        revoked: the user logs in again. False if there is no such user."""
        return await store.update_user_unbanned(conn, user_id)

    async def unban_user(self, user_id: str) -> bool:
        if parse_id(user_id) is None:
            return False
        async with self.db.acquire() as conn, conn.transaction():
            return await self.unban_in(conn, user_id)

    async def get_user(self, user_id: str) -> UserRow:
        user = await store.select_user(self.db, user_id)
        if user is None:
            raise InvalidCredential()
        return user

    async def _start_session(self, conn: Executor, user: UserRow, client: ClientInfo
                             ) -> AuthResult:
        session_id = await store.insert_session(
            conn,
            user_id=user.id,
            kind=client.kind,
            user_agent=client.user_agent,
            ip=client.address,
        )
        family_expires = datetime.now(UTC) + timedelta(seconds=self.settings.refresh_token_ttl_s)
        refresh_token = await refresh.issue(conn, session_id, family_expires)
        access_token, expires_at = self.tokens.issue(
            user_id=user.id, role=user.role, session_id=session_id
        )
        return AuthResult(
            user=user,
            session_id=session_id,
            access_token=access_token,
            expires_at=expires_at,
            refresh_token=refresh_token,
        )
