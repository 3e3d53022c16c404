"""Machine-readable contracts: ``GET /openapi.json`` and ``GET /asyncapi.json``.

The OpenAPI 3.1 document is generated from the same ``protocol`` Structs the
routes decode and encode (``msgspec.json.schema_components`` through
``protocol.schema``); only the list of operations below is written by hand.
Features add their routes to ``OPERATIONS``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from aiohttp import web

from protocol.auth import (
    AuthResponse,
    ChangePasswordRequest,
    DeleteAccountRequest,
    ErrorBody,
    ForgotPasswordRequest,
    LoginRequest,
    LogoutRequest,
    MeResponse,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from protocol.schema import asyncapi_document, openapi_components, schema_ref
from protocol.uploads import (
    CompleteRequest,
    MultipartResponse,
    PresignRequest,
    PresignResponse,
    UploadPurpose,
    UploadResponse,
)


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    summary: str
    request: type[msgspec.Struct] | None = None
    request_optional: bool = False
    status: int = 200
    response: type[msgspec.Struct] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = False
    sets_cookie: bool = False
    multipart: bool = False
    """The body is ``multipart/form-data`` with fields ``purpose`` then ``file``."""


_ERROR_TEXT = {
    400: "Malformed body or invalid field (the message names the field).",
    401: "Missing, wrong, expired or revoked credentials.",
    403: "Banned account, a cross-site cookie request, or a wrong current password.",
    404: "Unknown id, or another user's (existence does not leak).",
    409: "Conflict: the email is already registered or verified / the upload is not ready.",
    413: "Body (or file) larger than its limit, or an image with too many pixels.",
    415: "Body is not application/json / the file's bytes are not a supported image.",
    429: "Throttled; see Retry-After.",
    503: "A backend (e.g. object storage) is unavailable; nothing changed, retry.",
}

OPERATIONS: list[Operation] = [
    Operation(
        method="post", path="/api/v1/auth/register", summary="Create an account and log in.",
        request=RegisterRequest, status=201, response=AuthResponse,
        errors=(400, 409, 413, 415, 429), sets_cookie=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/login", summary="Log in with email and password.",
        request=LoginRequest, response=AuthResponse,
        errors=(400, 401, 403, 413, 415, 429), sets_cookie=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/refresh",
        summary="Spend a refresh token for a new pair; reusing a spent one revokes its family.",
        request=RefreshRequest, response=AuthResponse, errors=(400, 401, 403, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/logout",
        summary="Revoke the session and its refresh family; clears the cookie.",
        request=LogoutRequest, request_optional=True, status=204,
        errors=(400, 401, 403, 413, 415), auth=True,
    ),
    Operation(
        method="get", path="/api/v1/auth/me", summary="The authenticated user, with email.",
        response=MeResponse, errors=(401, 403), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/email/verify-request",
        summary="Mail a verification link to the account's address (throttled).",
        status=202, errors=(401, 403, 409, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/email/verify",
        summary="Verify the address with the mailed token (single-use).",
        request=VerifyEmailRequest, response=MeResponse, errors=(400, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/forgot",
        summary="Mail a password-reset link if the address has an account; 202 either way.",
        request=ForgotPasswordRequest, status=202, errors=(400, 413, 415, 429),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/reset",
        summary="Set a new password with the mailed token; every session is revoked.",
        request=ResetPasswordRequest, status=204, errors=(400, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/change",
        summary="Change the password; every other session is revoked (wrong current: 403).",
        request=ChangePasswordRequest, status=204, errors=(400, 401, 403, 413, 415, 429),
        auth=True,
    ),
    Operation(
        method="delete", path="/api/v1/account",
        summary="Close the account (password required); sessions end, sockets close 4003.",
        request=DeleteAccountRequest, status=204, errors=(400, 401, 403, 413, 415, 429, 503),
        auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads",
        summary="Upload an image (streamed; sniffed, cleaned of metadata, thumbnailed).",
        multipart=True, status=201, response=UploadResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/presign",
        summary="A presigned POST for a direct upload to storage; then call complete.",
        request=PresignRequest, status=201, response=PresignResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/multipart",
        summary="A resumable upload: presigned part URLs; then call complete with the parts.",
        request=PresignRequest, status=201, response=MultipartResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/{id}/complete",
        summary="Verify and process a presigned or multipart upload.",
        request=CompleteRequest, request_optional=True, response=UploadResponse,
        errors=(400, 401, 403, 404, 409, 413, 415), auth=True,
    ),
    Operation(
        method="get", path="/api/v1/uploads/{id}",
        summary="An upload's metadata with a short-lived download URL.",
        response=UploadResponse, errors=(401, 403, 404), auth=True,
    ),
    # --- live streaming (issue #15) ---
    Operation(
        method="post", path="/api/v1/live/livekit-webhook",
        summary="LiveKit's webhook (body application/webhook+json, signed in the "
                "Authorization header); room_finished ends the room's stream.",
        errors=(400, 401, 404),
    ),
]


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
    if op.multipart:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["purpose", "file"],
            "properties": {"purpose": schema_ref(UploadPurpose),
                           "file": {"type": "string", "format": "binary"}},
        }}}}
    if "{id}" in op.path:
        out["parameters"] = [{"name": "id", "in": "path", "required": True,
                              "schema": {"type": "string"}}]
    if op.request is not None:
        out["requestBody"] = {
            "required": not op.request_optional,
            "content": {"application/json": {"schema": schema_ref(op.request)}},
        }
    ok: dict[str, Any] = {"description": "Success."}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": schema_ref(op.response)}}
    if op.sets_cookie:
        ok["headers"] = {
            "Set-Cookie": {
                "description": "The session cookie (HttpOnly, SameSite=Lax).",
                "schema": {"type": "string"},
            }
        }
    responses: dict[str, Any] = {str(op.status): ok}
    for status in op.errors:
        error: dict[str, Any] = {
            "description": _ERROR_TEXT.get(status, "Error."),
            "content": {"application/json": {"schema": schema_ref(ErrorBody)}},
        }
        if status == 429:
            error["headers"] = {
                "Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}
            }
        responses[str(status)] = error
    out["responses"] = responses
    if op.auth:
        out["security"] = [{"bearer": []}, {"sessionCookie": []}]
    return out


def _operation_id(op: Operation) -> str:
    parts = (p.strip("{}") for p in op.path.split("/") if p and p != "api")
    return op.method + "".join(p[:1].upper() + p[1:] for p in parts)


@cache
def openapi_document() -> dict[str, Any]:
    types: list[type[Any]] = []
    for op in OPERATIONS:
        for tp in (op.request, op.response):
            if tp is not None and tp not in types:
                types.append(tp)
    types.append(ErrorBody)
    if any(op.multipart for op in OPERATIONS):
        types.append(UploadPurpose)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    components = openapi_components(types)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "petspark_session"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "PetSpark HTTP API", "version": "1"},
        "paths": paths,
        "components": components,
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def asyncapi(request: web.Request) -> web.Response:
    return web.json_response(_asyncapi())


@cache
def _asyncapi() -> dict[str, Any]:
    return asyncapi_document()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/asyncapi.json", asyncapi)
