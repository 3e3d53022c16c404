"""Browser sessions: an aiohttp-session encrypted cookie that holds only the session id.

The cookie is Fernet-encrypted and authenticated with a key derived from
SECRET_KEY (label ``petspark/session-cookie/v1``), and also accepted under the
key derived from PREVIOUS_SECRET_KEY, so a key rotation does not log browsers
out. It carries nothing but ``sid``: whether that session is still live is a
``sessions`` row, so a cookie is revocable although it is stored client-side.

The storage exists from ``create_app`` (aiohttp-session's middleware needs it
before start-up) but gets its keys at start-up, once SECRET_KEY is resolved.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet, MultiFernet

from server.errors import InvalidCredential
from server.settings import Settings

# aiohttp-session keeps its storage under a plain string request key, which
# aiohttp 3.14 warns about on every request; the warning is about its code, not ours.
warnings.filterwarnings("ignore", category=NotAppKeyWarning, module=r"aiohttp_session(\.|$)")

H = TypeVar("H", bound=Handler)

COOKIE_NAME = "petspark_session"
_SID = "sid"


class SessionCookies(EncryptedCookieStorage):
    def __init__(self, *, secure: bool, max_age_s: int, samesite: str = "Lax") -> None:
        # A throwaway key until use_keys(): nothing can be issued before start-up.
        super().__init__(
            Fernet(Fernet.generate_key()),
            cookie_name=COOKIE_NAME,
            max_age=max_age_s,
            path="/",
            secure=secure,
            httponly=True,
            samesite=samesite,
        )
        self.secure = secure
        self.samesite = samesite

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCookies:
        # Browsers drop a SameSite=None cookie that is not Secure.
        none = settings.cookie_samesite == "none"
        return cls(secure=settings.is_production or none,
                   max_age_s=settings.refresh_token_ttl_s,
                   samesite=settings.cookie_samesite.capitalize())

    def use_keys(self, keys: list[bytes]) -> None:
        """Encrypt with ``keys[0]``, decrypt with any (newest first)."""
        fernets = [Fernet(base64.urlsafe_b64encode(key)) for key in keys]
        # MultiFernet offers the encrypt/decrypt(ttl=) the parent class calls.
        self._fernet = MultiFernet(fernets)  # type: ignore[assignment]

    def carries_cookie(self, request: web.Request) -> bool:
        return bool(self.load_cookie(request))

    async def session_id(self, request: web.Request) -> str | None:
        """The session id in the request's cookie; None if there is no cookie.

        Raises ``InvalidCredential`` for a cookie that does not decrypt (forged,
        expired, or encrypted under a key no longer configured)."""
        if not self.carries_cookie(request):
            return None
        session = await self.load_session(request)
        sid = session.get(_SID)
        if session.new or not isinstance(sid, str) or not sid:
            raise InvalidCredential()
        return sid


_SESSIONLESS: set[Handler] = set()
"""Route handlers ``sessionless`` marked: the session middleware passes them by."""


def sessionless(handler: H) -> H:
    """Mark a route handler that never reads or writes the session through aiohttp-session
    (``get_session``, ``new_session``, ``remember``, ``forget``) and returns no
    ``web.Response`` of its own — the WebSocket route, which reads the cookie with
    ``SessionCookies.session_id`` and returns its socket. For such a handler the session
    middleware has nothing to do (aiohttp-session passes sockets and exceptions on as they
    are), so it is not run: no frame of it is kept for the socket's whole life."""
    _SESSIONLESS.add(handler)
    return handler


def middleware(cookies: SessionCookies) -> Middleware:
    saving = session_middleware(cookies)

    @web.middleware
    def sessions(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.match_info.handler in _SESSIONLESS:
            return handler(request)
        return saving(request, handler)

    return sessions


async def remember(request: web.Request, session_id: str) -> None:
    """Set the session cookie on this request's response (a new cookie: no fixation)."""
    session = await new_session(request)
    session[_SID] = session_id


async def forget(request: web.Request) -> None:
    """Clear the session cookie on this request's response."""
    session = await get_session(request)
    session.invalidate()


STALE = "petspark.stale_session_cookie"
"""Request key: the request's cookie named a revoked, expired or unknown session."""


def mark_stale(request: web.Request) -> None:
    """The cookie is dead: the response clears it (``clear_if_stale``) and the request goes
    on as if it carried none, so a stale cookie never blocks a valid token."""
    request[STALE] = True


def clear_if_stale(request: web.Request, response: web.StreamResponse,
                   cookies: SessionCookies) -> None:
    """Expire the session cookie on ``response`` if the request's was stale (errors too:
    aiohttp-session saves cookies only for responses its middleware sees)."""
    if request.get(STALE) and COOKIE_NAME not in response.cookies:
        response.del_cookie(COOKIE_NAME, path="/", secure=cookies.secure, httponly=True,
                            samesite=cookies.samesite)
