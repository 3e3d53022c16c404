"""Account rules (PROTOCOL §9, account routes): e-mail verification, forgotten and changed
passwords, closing the account.

Tokens (``account_tokens``): 32 random bytes, URL-safe base64 in the mailed link; only
the SHA-256 is stored; single-use (every live token of the same purpose is spent when
one is used); expiring (``EMAIL_VERIFY_TTL_S``, ``PASSWORD_RESET_TTL_S``); bound to the
address it was mailed to. A spent, unknown or expired token is ``BadRequest`` (400).

Mail goes out off the request path: requests queue a job (``_mail``) that a background
task turns into a message and sends (SMTP or ``.eml``). For ``password/forgot`` the job
also does the account lookup, so the request does exactly the same work whether the
address has an account or not — same answer, same time — and a known address's mail
never waits on SMTP. The queue is per process and bounded; a mail lost to a crash is
asked for again (the link's purpose is the same).

Sessions: a reset revokes every session of the user and closes their sockets 4001 on
every node; a change keeps the caller's session and revokes the others (4001); closing
the account deletes the sessions and closes every socket 4003 (do not reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from protocol.codes import CloseCode
from server.auth import policy, store
from server.auth.deletion import delete_account_data
from server.auth.passwords import Passwords
from server.auth.service import email_key
from server.auth.store import TokenPurpose, UserRow
from server.deps import Deps
from server.errors import BadRequest, Conflict, Forbidden, InvalidCredential, RateLimited
from server.mail.mailer import Mailer, MailError
from server.mail.messages import AccountMails
from server.principal import Principal
from server.resources.ratelimit import Limit, reserve

log = logging.getLogger(__name__)

MAIL_QUEUE = 1000
MAIL_WORKERS = 2
STOP_TIMEOUT_S = 10.0
INVALID_TOKEN = "token: invalid, expired or already used"
WRONG_PASSWORD = "wrong password"

MailJob = Callable[[], Awaitable[EmailMessage | None]]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def new_account_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(32)
    return token, hash_account_token(token)


def hash_account_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AccountService:
    def __init__(self, deps: Deps, *, passwords: Passwords, mailer: Mailer,
                 mails: AccountMails) -> None:
        self.db = deps.db
        self.settings = deps.settings
        self.limiter = deps.limiter
        self.node = deps.node
        self.stream = deps.stream
        self.storage = deps.storage
        self.passwords = passwords
        self.mailer = mailer
        self.mails = mails
        self._queue: asyncio.Queue[MailJob] = asyncio.Queue(MAIL_QUEUE)
        self._workers: list[asyncio.Task[None]] = []

    # --- lifecycle: the mail workers --------------------------------------------------------

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._mail_worker(), name=f"account-mail-{i}")
                         for i in range(MAIL_WORKERS)]

    async def stop(self) -> None:
        """Send what is queued (bounded), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), STOP_TIMEOUT_S)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def _mail(self, job: MailJob) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            log.error("account mail dropped: the mail queue is full", extra={
                "queued": self._queue.qsize()})

    async def _mail_worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                message = await job()
                if message is not None:
                    await self.mailer.send(message)
            except MailError:
                pass  # logged and counted by the mailer
            except Exception:
                log.exception("account mail job failed")
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Until every queued mail job has run (tests, shutdown)."""
        await self._queue.join()

    # --- e-mail verification --------------------------------------------------------------

    async def request_verification(self, user_id: str) -> None:
        user = await self._user(user_id)
        if user.email_verified:
            raise Conflict("email: already verified")
        decision = await self.limiter.hit(f"verify:user:{user_id}",
                                          self.settings.email_verify_per_hour, 3600)
        if not decision.allowed:
            raise RateLimited("too many verification mails; retry later",
                              decision.retry_after_s)
        ttl = self.settings.email_verify_ttl_s
        token = await self._issue(user, "verify_email", ttl)

        async def job() -> EmailMessage:
            return self.mails.verify_email(to=user.email, name=user.display_name,
                                           token=token, expires_in_s=ttl)

        self._mail(job)

    async def verify_email(self, token: str) -> UserRow:
        async with self.db.acquire() as conn, conn.transaction():
            row = await store.select_account_token(conn, hash_account_token(token), lock=True)
            user = await self._token_user(conn, row, "verify_email")
            await store.update_account_tokens_used(conn, user.id, "verify_email")
            await store.update_user_email_verified(conn, user.id)
            verified = await store.select_user(conn, user.id)
        assert verified is not None
        log.info("email verified", extra={"user_id": user.id})
        return verified

    # --- passwords --------------------------------------------------------------------------

    async def forgot_password(self, email: str, address: str | None) -> None:
        """Always the same work and answer; the lookup and the mail happen off the request."""
        email = policy.check_email(email)
        settings = self.settings
        limits = ((f"forgot:addr:{address or 'unknown'}",
                   settings.password_forgot_per_address_per_hour),
                  (f"forgot:email:{_digest(email)}", settings.password_forgot_per_hour))
        # Look at both first: a request refused by one limit does not use up the other.
        # Reserved atomically under both; a request refused by one uses up neither.
        attempt = await reserve(self.limiter, [Limit(k, n, 3600.0) for k, n in limits])
        if not attempt.allowed:
            raise RateLimited("too many password reset requests; retry later",
                              attempt.retry_after_s)
        ttl = settings.password_reset_ttl_s

        async def job() -> EmailMessage | None:
            user = await store.select_user_by_email(self.db, email)
            if user is None or user.deleted_at is not None or user.banned_at is not None:
                return None
            token = await self._issue(user, "reset_password", ttl)
            log.info("password reset mailed", extra={"user_id": user.id})
            return self.mails.reset_password(to=user.email, name=user.display_name,
                                             token=token, expires_in_s=ttl)

        self._mail(job)

    async def reset_password(self, token: str, password: str) -> str:
        """Set a new password with a mailed token; revoke every session. The user id."""
        token_hash = hash_account_token(token)
        row = await store.select_account_token(self.db, token_hash)
        user = await self._token_user(self.db, row, "reset_password")
        policy.check_password(password, user.email)
        password_hash = await self.passwords.hash(password)
        async with self.db.acquire() as conn, conn.transaction():
            # Again under the row lock: of two resets with one token exactly one wins.
            row = await store.select_account_token(conn, token_hash, lock=True)
            user = await self._token_user(conn, row, "reset_password")
            await store.update_account_tokens_used(conn, user.id, "reset_password")
            await store.update_user_password_hash(conn, user.id, password_hash)
            await store.update_user_email_verified(conn, user.id)  # the link proved it
            for sid in await store.update_sessions_revoked_for_user(conn, user.id):
                await store.update_refresh_tokens_spent_for_session(conn, sid)
        await self.node.kick(user_ids=(user.id,), code=CloseCode.NOT_AUTHENTICATED,
                             reason="password reset")
        # The link proved the owner: failed logins strangers piled up on the address go.
        await self.limiter.reset(email_key(user.email))
        log.info("password reset", extra={"user_id": user.id})
        self._mail_password_changed(user)
        return user.id

    async def change_password(self, principal: Principal, current: str, password: str) -> None:
        user = await self._user(principal.user_id)
        policy.check_password(password, user.email)
        await self._check_password(user, current, "current_password")
        password_hash = await self.passwords.hash(password)
        async with self.db.acquire() as conn, conn.transaction():
            await store.update_user_password_hash(conn, user.id, password_hash)
            await store.update_account_tokens_used(conn, user.id, "reset_password")
            others = await store.update_sessions_revoked_for_user_except(
                conn, user.id, principal.session_id)
            for sid in others:
                await store.update_refresh_tokens_spent_for_session(conn, sid)
        if others:
            await self.node.kick(session_ids=tuple(others), code=CloseCode.NOT_AUTHENTICATED,
                                 reason="password changed")
        log.info("password changed", extra={"user_id": user.id, "sessions_revoked": len(others)})
        self._mail_password_changed(user)

    # --- closing the account ----------------------------------------------------------------

    async def delete_account(self, principal: Principal, password: str) -> None:
        user = await self._user(principal.user_id)
        await self._check_password(user, password, "password")
        async with self.stream.transaction() as tx:
            locked = await store.select_user_for_update(tx.conn, user.id)
            if locked is None or locked.deleted_at is not None:
                raise InvalidCredential()  # deleted meanwhile by another request
            objects = await delete_account_data(tx, user.id, self.storage)
        await self.node.kick(user_ids=(user.id,), code=CloseCode.FORBIDDEN,
                             reason="account deleted")
        log.info("account deleted", extra={"user_id": user.id, "objects": objects})

        async def job() -> EmailMessage:
            return self.mails.account_deleted(to=user.email, name=user.display_name)

        self._mail(job)

    # --- helpers -----------------------------------------------------------------------------

    async def _user(self, user_id: str) -> UserRow:
        user = await store.select_user(self.db, user_id)
        if user is None or user.deleted_at is not None:
            raise InvalidCredential()
        return user

    async def _check_password(self, user: UserRow, password: str, field: str) -> None:
        """The account's password, or Forbidden (403); failures count like failed logins.
        The attempt is reserved before hashing (as for login), so concurrent guesses
        cannot get past the limit; a right password gives it back."""
        limit = Limit(f"password:user:{user.id}", self.settings.auth_login_max_failures,
                      float(self.settings.auth_login_window_s))
        attempt = await reserve(self.limiter, [limit])
        if not attempt.allowed:
            raise RateLimited("too many wrong passwords; retry later", attempt.retry_after_s)
        try:
            verified = await self.passwords.verify(user.password_hash, password)
        except BaseException:
            await attempt.release()
            raise
        if not verified:
            raise Forbidden(f"{field}: {WRONG_PASSWORD}")
        await attempt.release()

    async def _issue(self, user: UserRow, purpose: TokenPurpose, ttl_s: int) -> str:
        token, token_hash = new_account_token()
        async with self.db.acquire() as conn, conn.transaction():
            await store.delete_dead_account_tokens(conn, user.id)
            await store.insert_account_token(
                conn, token_hash=token_hash, user_id=user.id, purpose=purpose,
                email=user.email, expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s))
        return token

    @staticmethod
    async def _token_user(conn: store.Executor, row: store.AccountTokenRow | None,
                          purpose: TokenPurpose) -> UserRow:
        if (row is None or row.purpose != purpose or row.used_at is not None
                or row.expires_at <= datetime.now(UTC)):
            raise BadRequest(INVALID_TOKEN)
        user = await store.select_user(conn, row.user_id)
        if user is None or user.deleted_at is not None or user.email != row.email:
            raise BadRequest(INVALID_TOKEN)
        return user

    def _mail_password_changed(self, user: UserRow) -> None:
        async def job() -> EmailMessage:
            return self.mails.password_changed(to=user.email, name=user.display_name)

        self._mail(job)
