"""The one place a credential becomes a ``Principal``: HTTP routes and the WebSocket gateway.

Every path ends in the same database check (one primary-key lookup of the
session joined to its user): a revoked session is ``InvalidCredential``
(401 / close 4001), a banned user ``AccountBanned`` (403 / close 4003) — a ban
is reported as such even though banning also revokes the sessions. The role in
the ``Principal`` is the database's, so a demotion applies at once.

``from_cookie`` does not look at ``Origin``: the gateway must refuse a foreign
Origin with 403 before the upgrade, and HTTP routes check it for
state-changing methods (``server.auth.request``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from server.auth import store
from server.auth.sessions import SessionCookies
from server.auth.store import Executor, SessionState
from server.auth.tokens import AccessTokens
from server.errors import AccountBanned, InvalidCredential
from server.ids import parse_id
from server.principal import Principal


class Verifier:
    def __init__(
        self,
        db: Executor,
        tokens: AccessTokens,
        cookies: SessionCookies,
        cookie_session_ttl_s: int,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._cookies = cookies
        self._cookie_ttl = timedelta(seconds=cookie_session_ttl_s)

    async def from_bearer(self, token: str) -> Principal:
        """An access token (``Authorization: Bearer``, ``hello.token``).

        Raises ``InvalidCredential`` (bad signature, expired, revoked session) or
        ``AccountBanned``. ``Principal.expires_at`` is the token's ``exp``."""
        claims = self._tokens.verify(token)
        state = await self._live_session(claims.sid)
        if state.user_id != claims.sub:
            raise InvalidCredential()
        return Principal(
            user_id=state.user_id,
            role=state.role,
            session_id=state.session_id,
            expires_at=claims.expires_at,
        )

    async def from_cookie(self, request: web.Request) -> Principal | None:
        """The session cookie; None when the request carries none.

        Raises ``InvalidCredential`` (undecryptable, revoked or too old) or
        ``AccountBanned``. Does not check ``Origin``."""
        session_id = await self._cookies.session_id(request)
        if session_id is None:
            return None
        state = await self._live_session(session_id)
        if state.created_at + self._cookie_ttl <= datetime.now(UTC):
            raise InvalidCredential()
        return Principal(user_id=state.user_id, role=state.role, session_id=state.session_id)

    async def check_active(self, principal: Principal) -> None:
        """Re-check a principal verified earlier (e.g. a socket about to be welcomed):
        revoked → ``InvalidCredential``, banned → ``AccountBanned``, and a role that
        changed since → ``InvalidCredential("role changed")`` (the client reconnects and
        its new principal carries the new role)."""
        state = await self._live_session(principal.session_id)
        if state.user_id != principal.user_id:
            raise InvalidCredential()
        if state.role != principal.role:
            raise InvalidCredential("role changed")

    async def _live_session(self, session_id: str) -> SessionState:
        if parse_id(session_id) is None:
            raise InvalidCredential()
        state = await store.select_session_state(self._db, session_id)
        if state is None:
            raise InvalidCredential()
        if state.banned:
            raise AccountBanned()
        if state.revoked:
            raise InvalidCredential()
        return state
