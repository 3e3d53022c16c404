"""The auth routes of PROTOCOL §9: register, login, refresh, logout, me.

Bodies are the ``protocol.auth`` Structs. Register and login answer both the
token pair (native clients) and the session cookie (browsers); both name the
same session, so logging out through either revokes both. Answers carrying
credentials are ``Cache-Control: no-store``. Domain and auth errors propagate
to the middleware, which maps them to JSON errors (``server.http.errors``).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from protocol.auth import (
    AuthResponse,
    LoginRequest,
    LogoutRequest,
    MeResponse,
    RefreshRequest,
    RegisterRequest,
)
from protocol.objects import Role, User
from server.auth import devices, sessions
from server.auth.service import AuthResult, ClientInfo
from server.auth.store import UserRow
from server.errors import InvalidCredential, Unauthorized
from server.http.authenticate import authenticate
from server.http.client import client_address, origin_allowed
from server.http.json_body import decode_json_body
from server.state import RUNTIME, SESSION_COOKIES

PREFIX = "/api/v1/auth"
_NO_STORE = {"Cache-Control": "no-store"}


def wire_user(user: UserRow) -> User:
    return User(id=user.id, display_name=user.display_name, role=Role(user.role), email=user.email,
                email_verified=user.email_verified)


def _json(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        content_type="application/json",
        headers=_NO_STORE,
    )


def _auth_response(request: web.Request, result: AuthResult, status: int = 200
                   ) -> web.Response:
    response = _json(
        AuthResponse(
            user=wire_user(result.user),
            access_token=result.access_token,
            refresh_token=result.refresh_token,
            expires_at=result.expires_at,
            device_token=result.device_token,
        ),
        status,
    )
    if result.device_token is not None:
        cookies = request.app[SESSION_COOKIES]
        response.set_cookie(
            devices.COOKIE_NAME, result.device_token, path=devices.COOKIE_PATH,
            max_age=request.app[RUNTIME].auth.devices.ttl_s, httponly=True,
            secure=cookies.secure, samesite=cookies.samesite)
    return response


def _client(request: web.Request, device_token: str | None = None) -> ClientInfo:
    user_agent = request.headers.get("User-Agent")
    return ClientInfo(
        address=client_address(request),
        user_agent=user_agent[:512] if user_agent else None,
        # A request from an allowed browser origin is a web-app login; the rest are apps.
        kind="cookie" if origin_allowed(request) else "token",
        device_token=device_token or request.cookies.get(devices.COOKIE_NAME),
    )


async def register(request: web.Request) -> web.Response:
    body = await decode_json_body(request, RegisterRequest)
    result = await request.app[RUNTIME].auth.register(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        client=_client(request),
    )
    await sessions.remember(request, result.session_id)
    return _auth_response(request, result, 201)


async def login(request: web.Request) -> web.Response:
    body = await decode_json_body(request, LoginRequest)
    result = await request.app[RUNTIME].auth.login(
        email=body.email, password=body.password, client=_client(request, body.device_token)
    )
    await sessions.remember(request, result.session_id)
    return _auth_response(request, result)


async def refresh(request: web.Request) -> web.Response:
    body = await decode_json_body(request, RefreshRequest)
    result = await request.app[RUNTIME].auth.refresh_session(body.refresh_token)
    return _auth_response(request, result)


async def logout(request: web.Request) -> web.Response:
    body = await decode_json_body(request, LogoutRequest, allow_empty=True)
    session_id = user_id = None
    try:
        principal = await authenticate(request)
        session_id, user_id = principal.session_id, principal.user_id
    except Unauthorized:
        # An expired access token must not keep a native app from logging out:
        # the refresh token alone identifies (and proves) the session.
        if not body.refresh_token:
            raise
    revoked = await request.app[RUNTIME].auth.logout(
        session_id=session_id,
        user_id=user_id,
        refresh_token=body.refresh_token,
    )
    if not revoked:
        raise InvalidCredential()
    await sessions.forget(request)
    return web.Response(status=204, headers=_NO_STORE)


async def me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    user = await request.app[RUNTIME].auth.get_user(principal.user_id)
    return _json(MeResponse(user=wire_user(user)))


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/register", register)
    app.router.add_post(f"{PREFIX}/login", login)
    app.router.add_post(f"{PREFIX}/refresh", refresh)
    app.router.add_post(f"{PREFIX}/logout", logout)
    app.router.add_get(f"{PREFIX}/me", me)
