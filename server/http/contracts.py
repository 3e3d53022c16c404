"""Machine-readable contracts: ``GET /openapi.json`` and ``GET /asyncapi.json``.

The OpenAPI 3.1 document is generated from the same ``protocol`` Structs the routes
decode and encode (``protocol.schema.contract_schemas``); only the list of operations
below is written by hand. **A new HTTP route adds its ``Operation`` here** (a test fails
for a registered route without one, and for an operation with no route). The served
document lists the operations whose route this app registered (so the local store's
``/api/v1/files`` routes appear only without ``S3_BUCKET``), with ``servers`` set to the
public base URL (``PUBLIC_URL``, else the request's scheme and host).

Not described, on purpose: the development-only ``/demo`` pages (``UNDESCRIBED``) — a
page for people, absent in production, that generated clients must not carry.

The operations also tell the HTTP error mapper which names a route's request can carry
(``request_fields``), so an error's ``field`` is only ever a real field.
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
from protocol.codec import CODECS
from protocol.health import Health, Readiness
from protocol.schema import (
    COOKIE_NAME,
    asyncapi_document,
    contract_schemas,
    for_server,
    schema_ref,
)
from protocol.uploads import (
    CompleteRequest,
    MultipartResponse,
    PresignRequest,
    PresignResponse,
    UploadPurpose,
    UploadResponse,
    UploadVariant,
)
from server.credentials import sender_address
from server.state import SETTINGS

UNDESCRIBED = ("/demo",)
"""Path prefixes of routes the OpenAPI document leaves out (development-only pages)."""

_STRING: dict[str, Any] = {"type": "string"}
_BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """A path, query or header parameter."""

    name: str
    where: str = "query"
    description: str = ""
    required: bool = False
    schema: dict[str, Any] | type[Any] | None = None
    """A JSON schema, or a protocol type (``schema_ref``); None: a string."""


class Field(msgspec.Struct, frozen=True, kw_only=True):
    """A multipart form field, in the order the route reads them."""

    name: str
    schema: dict[str, Any] | type[Any] | None = None
    """As ``Param.schema``."""
    description: str = ""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """A response other than the JSON error body."""

    status: int
    description: str
    body: type[msgspec.Struct] | None = None
    media_type: str = "application/json"
    schema: dict[str, Any] | None = None
    """The schema of a body that is not a Struct (text, bytes)."""
    headers: tuple[Param, ...] = ()


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    summary: str
    tag: str = ""
    """The operation's group; empty: the path's area (``/api/v1/live/…`` is ``live``), so
    an ``Operation`` written without one still builds a valid document."""
    description: str = ""
    request: type[msgspec.Struct] | None = None
    request_optional: bool = False
    form: tuple[Field, ...] = ()
    """A ``multipart/form-data`` body with these fields."""
    raw_body: str | None = None
    """The media type of a body of raw bytes."""
    params: tuple[Param, ...] = ()
    status: int = 200
    response: type[msgspec.Struct] | None = None
    replies: tuple[Reply, ...] = ()
    """Responses beside ``status``/``response`` and the errors (101, a 503 with a body)."""
    errors: tuple[int | tuple[int, str], ...] = ()
    """Error statuses (the JSON error body), each with the common text or its own."""
    auth: bool = False
    auth_optional: bool = False
    """Credentials are optional (the socket may authenticate with ``hello.token``)."""
    sets_cookie: bool = False


_ERROR_TEXT = {
    400: "Malformed body or invalid field (the message names the field; `field` is its path).",
    401: "Missing, wrong, expired or revoked credentials.",
    403: "Banned account, a cross-site cookie request, or a wrong current password.",
    404: "Unknown id, or another user's (existence does not leak).",
    409: "Conflict: the email is already registered or verified / the upload is not ready.",
    413: "Body (or file) larger than its limit, or an image with too many pixels.",
    415: "Body is not application/json / the file's bytes are not a supported image.",
    429: "Throttled; see Retry-After.",
    503: "A backend (e.g. object storage) is unavailable; nothing changed, retry.",
}
_DEFAULT_ERROR = (
    "Any other error, same body: e.g. 405 `method_not_allowed` (with `Allow`), 500 "
    "`internal`, 503 `unavailable`."
)
_ID = Param(name="id", where="path", required=True, description="The upload's id.")
_KEY = Param(name="key", where="path", required=True,
             description="The object key (may contain `/`). The server hands out these URLs "
                         "whole (`upload.url`, presigned forms and part URLs): never build one.")
_SIGNED = "Signed by the server; part of the URL it handed out."


def _signed(*names: str) -> tuple[Param, ...]:
    return tuple(Param(name=n, required=True, description=_SIGNED) for n in names)


OPERATIONS: list[Operation] = [
    # --- auth and account ---------------------------------------------------------------
    Operation(
        method="post", path="/api/v1/auth/register", tag="auth",
        summary="Create an account and log in.",
        request=RegisterRequest, status=201, response=AuthResponse,
        errors=(400, 409, 413, 415, 429), sets_cookie=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/login", tag="auth",
        summary="Log in with email and password.", request=LoginRequest, response=AuthResponse,
        errors=(400, 401, 403, 413, 415, 429), sets_cookie=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/refresh", tag="auth",
        summary="Spend a refresh token for a new pair; reusing a spent one revokes its family.",
        request=RefreshRequest, response=AuthResponse, errors=(400, 401, 403, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/logout", tag="auth",
        summary="Revoke the session and its refresh family; clears the cookie.",
        request=LogoutRequest, request_optional=True, status=204,
        errors=(400, 401, 403, 413, 415), auth=True,
    ),
    Operation(
        method="get", path="/api/v1/auth/me", tag="auth",
        summary="The authenticated user, with email.",
        response=MeResponse, errors=(401, 403), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/email/verify-request", tag="account",
        summary="Mail a verification link to the account's address (throttled).",
        status=202, errors=(401, 403, 409, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/auth/email/verify", tag="account",
        summary="Verify the address with the mailed token (single-use).",
        request=VerifyEmailRequest, response=MeResponse, errors=(400, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/forgot", tag="account",
        summary="Mail a password-reset link if the address has an account; 202 either way.",
        request=ForgotPasswordRequest, status=202, errors=(400, 413, 415, 429),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/reset", tag="account",
        summary="Set a new password with the mailed token; every session is revoked.",
        request=ResetPasswordRequest, status=204, errors=(400, 413, 415),
    ),
    Operation(
        method="post", path="/api/v1/auth/password/change", tag="account",
        summary="Change the password; every other session is revoked (wrong current: 403).",
        request=ChangePasswordRequest, status=204, errors=(400, 401, 403, 413, 415, 429),
        auth=True,
    ),
    Operation(
        method="delete", path="/api/v1/account", tag="account",
        summary="Close the account (password required); sessions end, sockets close 4003.",
        request=DeleteAccountRequest, status=204, errors=(400, 401, 403, 413, 415, 429, 503),
        auth=True,
    ),
    # --- uploads ------------------------------------------------------------------------
    Operation(
        method="post", path="/api/v1/uploads", tag="uploads",
        summary="Upload an image (streamed; sniffed, cleaned of metadata, thumbnailed).",
        form=(Field(name="purpose", schema=UploadPurpose, description="First, so its size "
                    "limit applies while the file streams."),
              Field(name="file", schema=_BINARY, description="The image (JPEG, PNG, WebP or "
                    "HEIC; the type is read from the bytes).")),
        status=201, response=UploadResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/presign", tag="uploads",
        summary="A presigned POST for a direct upload to storage; then call complete.",
        request=PresignRequest, status=201, response=PresignResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/multipart", tag="uploads",
        summary="A resumable upload: presigned part URLs; then call complete with the parts.",
        request=PresignRequest, status=201, response=MultipartResponse,
        errors=(400, 401, 403, 413, 415, 429), auth=True,
    ),
    Operation(
        method="post", path="/api/v1/uploads/{id}/complete", tag="uploads",
        summary="Verify and process a presigned or multipart upload.",
        params=(_ID,), request=CompleteRequest, request_optional=True, response=UploadResponse,
        errors=(400, 401, 403, 404, 409, 413, 415), auth=True,
    ),
    Operation(
        method="get", path="/api/v1/uploads/{id}", tag="uploads",
        summary="An upload's metadata with a short-lived download URL.",
        params=(_ID, Param(name="variant", schema=UploadVariant,
                           description="Which file `upload.url` points at (absent: `image`).")),
        response=UploadResponse, errors=(400, 401, 403, 404), auth=True,
    ),
    # --- the local store's signed URLs (only without S3_BUCKET) --------------------------
    Operation(
        method="get", path="/api/v1/files/{key}", tag="files",
        summary="Download a stored object through a signed URL (local storage only).",
        description="Registered only when objects live on local disk (`S3_BUCKET` unset); "
                    "the signature is the credential, as with an S3 presigned URL.",
        params=(_KEY, *_signed("exp", "sig")),
        replies=(Reply(status=200, description="The object's bytes.", media_type="*/*",
                       schema=_BINARY),),
        errors=(403, 404),
    ),
    Operation(
        method="put", path="/api/v1/files/{key}", tag="files",
        summary="PUT one part of a multipart upload to its signed URL (local storage only).",
        description="Exactly the signed `size` bytes; keep the response's `ETag` for "
                    "`complete`.",
        params=(_KEY, *_signed("upload_id", "part", "size", "exp", "sig")),
        raw_body="application/octet-stream",
        replies=(Reply(status=200, description="Stored; `ETag` names the part.",
                       headers=(Param(name="ETag", where="header", required=True,
                                      description="Send it back in `complete`'s `parts`."),)),),
        errors=(400, 403, 404, 413),
    ),
    Operation(
        method="post", path="/api/v1/files", tag="files",
        summary="The presigned POST form's target (local storage only).",
        description="The `fields` of `POST /api/v1/uploads/presign` in order, then `file` last.",
        form=(Field(name="key", description=_SIGNED), Field(name="policy", description=_SIGNED),
              Field(name="signature", description=_SIGNED), Field(name="file", schema=_BINARY)),
        replies=(Reply(status=204, description="Stored; now call complete."),),
        errors=(400, 403, 413, 415),
    ),
    # --- realtime -----------------------------------------------------------------------
    Operation(
        method="get", path="/ws", tag="realtime",
        summary="Open the session's WebSocket (the protocol is GET /asyncapi.json).",
        description=(
            "A WebSocket upgrade. Credentials: the `Authorization` header, else the session "
            "cookie (then `Origin` must be allowed), else `hello.token` in the first "
            "message. Every refusal after the upgrade is a close code (4001 not "
            "authenticated, 4003 banned, …: `x-close-codes` in /asyncapi.json)."
        ),
        params=(
            Param(name="Upgrade", where="header", required=True,
                  schema={"type": "string", "enum": ["websocket"]}),
            Param(name="Sec-WebSocket-Protocol", where="header",
                  schema={"type": "string", "enum": list(CODECS)},
                  description="The sub-protocol; omitted or unknown: petspark.v1.json."),
            Param(name="Origin", where="header",
                  description="Must be in ALLOWED_ORIGINS when the cookie authenticates."),
        ),
        replies=(Reply(status=101, description="Switching Protocols: the socket is open.",
                       headers=(Param(name="Sec-WebSocket-Protocol", where="header",
                                      description="The chosen sub-protocol (absent: JSON)."),)),),
        errors=((400, "Not a WebSocket upgrade."),
                (403, "The session cookie authenticated and `Origin` is not allowed "
                      "(cross-site WebSocket hijacking)."),
                (503, "The server is shutting down; reconnect (to another node).")),
        auth=True, auth_optional=True,
    ),
    # --- operations ---------------------------------------------------------------------
    Operation(
        method="get", path="/healthz", tag="operations",
        summary="Liveness: the process answers (no backend is checked).", response=Health,
    ),
    Operation(
        method="get", path="/readyz", tag="operations",
        summary="Readiness: the database, the broker and the storage answer.",
        response=Readiness,
        replies=(Reply(status=503, description="A backend failed; `checks` says which.",
                       body=Readiness),),
    ),
    Operation(
        method="get", path="/metrics", tag="operations",
        summary="Prometheus metrics (text exposition format 0.0.4).",
        description="With `METRICS_TOKEN` set: `Authorization: Bearer <METRICS_TOKEN>` is "
                    "required (not a user's access token). Without it: open in development, "
                    "404 (like an unknown route) in production.",
        replies=(Reply(status=200, description="The metrics.",
                       media_type="text/plain; version=0.0.4", schema=_STRING),),
        errors=((401, "`METRICS_TOKEN` is set and the request's Bearer token is not it."),
                (404, "Production without `METRICS_TOKEN`: metrics are not served.")),
    ),
    Operation(
        method="get", path="/openapi.json", tag="operations",
        summary="This document (OpenAPI 3.1).",
        replies=(Reply(status=200, description="The OpenAPI document.", schema=_ANY_OBJECT),),
    ),
    Operation(
        method="get", path="/asyncapi.json", tag="operations",
        summary="The WebSocket protocol (AsyncAPI 3.0).",
        replies=(Reply(status=200, description="The AsyncAPI document.", schema=_ANY_OBJECT),),
    ),
    # --- live streaming (issue #15) ---
    Operation(
        method="post", path="/api/v1/live/livekit-webhook", tag="live",
        summary="LiveKit's webhook: room_finished ends the room's stream.",
        description="Called by LiveKit, not by apps: the body is signed in the "
                    "`Authorization` header (checked against `LIVEKIT_API_SECRET`). 404 when "
                    "`LIVE_MEDIA` is not `livekit`.",
        raw_body="application/webhook+json",
        replies=(Reply(status=200, description="Accepted.", schema=_ANY_OBJECT),),
        errors=(400, 401, 404),
    ),
]

_TAGS = {
    "auth": "Log in and out; the session cookie and token pair.",
    "account": "E-mail verification, passwords, closing the account.",
    "uploads": "Images: direct, presigned and resumable uploads.",
    "files": "The local store's signed URLs (only without S3_BUCKET).",
    "realtime": "The WebSocket upgrade; the protocol itself is in /asyncapi.json.",
    "live": "LiveKit's webhook (live streams with LIVE_MEDIA=livekit).",
    "operations": "Health, readiness, metrics and these contracts.",
}


def _tag(op: Operation) -> str:
    if op.tag:
        return op.tag
    parts = [p for p in op.path.split("/") if p and not p.startswith("{")]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return parts[0] if parts else "operations"


def _schema(value: dict[str, Any] | type[Any] | None) -> dict[str, Any]:
    if value is None:
        return _STRING
    return value if isinstance(value, dict) else schema_ref(value)


def _param(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "in": p.where, "schema": _schema(p.schema)}
    if p.required:
        out["required"] = True
    if p.description:
        out["description"] = p.description
    return out


def _reply(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    schema = schema_ref(reply.body) if reply.body is not None else reply.schema
    if schema is not None:
        out["content"] = {reply.media_type: {"schema": schema}}
    if reply.headers:
        out["headers"] = {h.name: {k: v for k, v in _param(h).items() if k not in ("name", "in")}
                          for h in reply.headers}
    return out


def _error(status: int, text: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "description": text or _ERROR_TEXT.get(status, "Error."),
        "content": {"application/json": {"schema": schema_ref(ErrorBody)}},
    }
    if status == 429:
        error["headers"] = {
            "Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}
        }
    if status == 401:
        error["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer realm=\"petspark\"`.",
                                 "schema": _STRING}
        }
    return error


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op),
                           "tags": [_tag(op)]}
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [_param(p) for p in op.params]
    if op.form:
        out["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [f.name for f in op.form],
            "properties": {f.name: {**_schema(f.schema),
                                    **({"description": f.description} if f.description else {})}
                           for f in op.form},
        }}}}
    if op.raw_body is not None:
        out["requestBody"] = {"required": True,
                              "content": {op.raw_body: {"schema": _BINARY}}}
    if op.request is not None:
        out["requestBody"] = {
            "required": not op.request_optional,
            "content": {"application/json": {"schema": schema_ref(op.request)}},
        }
    responses: dict[str, Any] = {}
    if op.response is not None or not op.replies:
        ok: dict[str, Any] = {"description": "Success."}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": schema_ref(op.response)}}
        if op.sets_cookie:
            ok["headers"] = {
                "Set-Cookie": {
                    "description": "The session cookie (HttpOnly; SameSite per COOKIE_SAMESITE).",
                    "schema": _STRING,
                }
            }
        responses[str(op.status)] = ok
    for reply in op.replies:
        responses[str(reply.status)] = _reply(reply)
    for item in op.errors:
        status, text = item if isinstance(item, tuple) else (item, None)
        responses[str(status)] = _error(status, text)
    responses["default"] = {
        "description": _DEFAULT_ERROR,
        "content": {"application/json": {"schema": schema_ref(ErrorBody)}},
    }
    out["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0])))
    if op.auth:
        out["security"] = [{"bearer": []}, {"sessionCookie": []}]
        if op.auth_optional:
            out["security"].append({})
    return out


def _operation_id(op: Operation) -> str:
    parts = [p.strip("{}") for p in op.path.replace(".", "/").split("/") if p and p != "api"]
    words = [w for p in parts for w in p.replace("-", "_").split("_") if w]
    return op.method + "".join(w[:1].upper() + w[1:] for w in words)


def _route_key(method: str, path: str) -> tuple[str, str]:
    return method.lower(), path


_BY_ROUTE = {_route_key(op.method, op.path): op for op in OPERATIONS}


def request_fields(method: str, path: str) -> frozenset[str]:
    """The names a request to this route can carry (body, query, path and form fields):
    an error's ``field`` must be one of them (``AppError.field_in``)."""
    return _FIELDS.get(_route_key(method, path), frozenset())


def _fields_of(op: Operation) -> frozenset[str]:
    names = {p.name for p in op.params if p.where != "header"} | {f.name for f in op.form}
    if op.request is not None:
        names |= set(op.request.__struct_encode_fields__)
    return frozenset(names)


_FIELDS = {key: _fields_of(op) for key, op in _BY_ROUTE.items()}


def registered_routes(app: web.Application) -> frozenset[tuple[str, str]]:
    """``(method, path)`` of every route of ``app`` that the document describes (HEAD,
    which aiohttp adds beside GET, and ``UNDESCRIBED`` pages left out)."""
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        if resource.canonical.startswith(UNDESCRIBED):
            continue
        routes.add(_route_key(route.method, resource.canonical))
    return frozenset(routes)


@cache
def openapi_document(routes: frozenset[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The OpenAPI document of the operations whose route is in ``routes`` (every
    operation when None), without ``servers`` and ``info.contact`` (set per request)."""
    return describe([op for op in OPERATIONS
                     if routes is None or _route_key(op.method, op.path) in routes])


def describe(ops: list[Operation]) -> dict[str, Any]:
    """The OpenAPI document of ``ops`` (``openapi_document`` picks them)."""
    sent: list[type[Any]] = [ErrorBody]
    received: list[type[Any]] = []
    for op in ops:
        for reply_type in (op.response, *(r.body for r in op.replies)):
            if reply_type is not None and reply_type not in sent:
                sent.append(reply_type)
        if op.request is not None and op.request not in received:
            received.append(op.request)
        for schema in (*(p.schema for p in op.params), *(f.schema for f in op.form)):
            if isinstance(schema, type) and schema not in received:
                received.append(schema)
    paths: dict[str, Any] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    components: dict[str, Any] = {"schemas": contract_schemas(sent, received)}
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME},
    }
    used_tags = dict.fromkeys(_tag(op) for op in ops)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PetSpark HTTP API",
            "version": "1",
            "description": (
                "The thin HTTP side of PetSpark (PROTOCOL §9): auth and account, uploads, "
                "health, and the WebSocket upgrade whose protocol is /asyncapi.json. Errors "
                "are `{\"error\": {\"code\", \"message\", \"field\"?}}`."
            ),
            "license": {"name": "Proprietary (all rights reserved)"},
        },
        "tags": [{"name": t, **({"description": _TAGS[t]} if t in _TAGS else {})}
                 for t in used_tags],
        "paths": paths,
        "components": components,
    }


def public_base(request: web.Request) -> str:
    """``PUBLIC_URL``, else the request's own scheme and host (as absolute URLs use)."""
    base = request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/")


def _contact(request: web.Request, base: str) -> dict[str, str]:
    settings = request.app[SETTINGS]
    contact = {"name": "PetSpark backend", "url": base + "/"}
    email = settings.api_contact_email or sender_address(settings.mail_from)
    if email:
        contact["email"] = email
    return contact


async def openapi(request: web.Request) -> web.Response:
    doc = openapi_document(registered_routes(request.app))
    base = public_base(request)
    info = {**doc["info"], "contact": _contact(request, base)}
    served = {"openapi": doc["openapi"], "info": info, "servers": [{"url": base}], **doc}
    served["info"] = info
    return web.json_response(served)


async def asyncapi(request: web.Request) -> web.Response:
    base = public_base(request)
    ws_url = ("wss" if base.startswith("https:") else "ws") + base[base.index(":"):]
    return web.json_response(for_server(_asyncapi(), ws_url, _contact(request, base)))


@cache
def _asyncapi() -> dict[str, Any]:
    return asyncapi_document()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/asyncapi.json", asyncapi)
