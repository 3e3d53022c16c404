"""The account routes of PROTOCOL §9: e-mail verification, forgotten/changed password,
closing the account. The rules are ``server.auth.account.AccountService``'s.

| route | answer |
|---|---|
| ``POST /api/v1/auth/email/verify-request`` (authenticated) | 202, no body |
| ``POST /api/v1/auth/email/verify {token}`` | 200 ``{user}`` |
| ``POST /api/v1/auth/password/forgot {email}`` | 202, no body — known address or not |
| ``POST /api/v1/auth/password/reset {token, password}`` | 204 |
| ``POST /api/v1/auth/password/change {current_password, password}`` (authenticated) | 204 |
| ``DELETE /api/v1/account {password}`` (authenticated) | 204, session cookie cleared |
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from protocol.auth import (
    ChangePasswordRequest,
    DeleteAccountRequest,
    ForgotPasswordRequest,
    MeResponse,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from server.auth import sessions
from server.http.auth import PREFIX, wire_user
from server.http.authenticate import authenticate
from server.http.client import client_address
from server.http.json_body import decode_json_body
from server.state import RUNTIME

_NO_STORE = {"Cache-Control": "no-store"}


def _accepted() -> web.Response:
    return web.Response(status=202, headers=_NO_STORE)


def _no_content() -> web.Response:
    return web.Response(status=204, headers=_NO_STORE)


async def verify_request(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await request.app[RUNTIME].account.request_verification(principal.user_id)
    return _accepted()


async def verify(request: web.Request) -> web.Response:
    body = await decode_json_body(request, VerifyEmailRequest)
    user = await request.app[RUNTIME].account.verify_email(body.token)
    return web.Response(body=msgspec.json.encode(MeResponse(user=wire_user(user))),
                        content_type="application/json", headers=_NO_STORE)


async def forgot(request: web.Request) -> web.Response:
    body = await decode_json_body(request, ForgotPasswordRequest)
    await request.app[RUNTIME].account.forgot_password(body.email, client_address(request))
    return _accepted()


async def reset(request: web.Request) -> web.Response:
    body = await decode_json_body(request, ResetPasswordRequest)
    await request.app[RUNTIME].account.reset_password(body.token, body.password)
    if _has_cookie(request):
        await sessions.forget(request)  # this browser's session was revoked too
    return _no_content()


async def change(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await decode_json_body(request, ChangePasswordRequest)
    await request.app[RUNTIME].account.change_password(
        principal, body.current_password, body.password)
    return _no_content()


async def delete_account(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await decode_json_body(request, DeleteAccountRequest)
    await request.app[RUNTIME].account.delete_account(principal, body.password)
    if _has_cookie(request):
        await sessions.forget(request)
    return _no_content()


def _has_cookie(request: web.Request) -> bool:
    return sessions.COOKIE_NAME in request.cookies


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/email/verify-request", verify_request)
    app.router.add_post(f"{PREFIX}/email/verify", verify)
    app.router.add_post(f"{PREFIX}/password/forgot", forgot)
    app.router.add_post(f"{PREFIX}/password/reset", reset)
    app.router.add_post(f"{PREFIX}/password/change", change)
    app.router.add_delete("/api/v1/account", delete_account)
