"""An FCM-shaped HTTP server on loopback: Google's OAuth token endpoint + ``messages:send``.

- ``POST /token``: the JWT-bearer grant. The RS256 assertion must verify with the test
  service account's public key, name the account (``iss``), the FCM scope, Google's
  token URL as ``aud``, the key id as ``kid``, and live at most an hour. It answers
  ``{access_token, expires_in, token_type}`` and counts ``token_requests``.
- ``POST /v1/projects/{project}/messages:send``: the bearer token must be one it issued
  and unexpired by ``clock`` (else 401 ``UNAUTHENTICATED``); the body must be a v1 message (a token,
  ``notification`` strings, ``data`` with string values only, ``android.ttl`` as
  ``"<n>s"``). Then it answers what ``respond()`` queued, in FCM's error format:
  ``ok`` (200 ``{name}``), ``unregistered`` (404 ``UNREGISTERED``), ``invalid_token``
  (400 ``INVALID_ARGUMENT`` on ``message.token``), ``invalid_payload`` (400
  ``INVALID_ARGUMENT`` on a data field), ``throttled`` (429 ``QUOTA_EXCEEDED``, with
  ``Retry-After``), ``unavailable`` (503).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from server.credentials import GOOGLE_TOKEN_URI
from server.push.fcm import FCM_SCOPE

_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass
class FcmReply:
    kind: str
    retry_after: str | None = None


def _error(status: int, state: str, message: str, *, code: str | None = None,
           field: str | None = None) -> tuple[int, dict[str, Any]]:
    details: list[dict[str, Any]] = []
    if code:
        details.append({"@type": _FCM_ERROR, "errorCode": code})
    if field:
        details.append({"@type": _BAD_REQUEST,
                        "fieldViolations": [{"field": field, "description": message}]})
    return status, {"error": {"code": status, "message": message, "status": state,
                              "details": details}}


class FcmServer:
    def __init__(self, project_id: str = "petspark-test", token_lifetime_s: int = 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self.project_id = project_id
        self.clock = clock  # a test that moves the provider's clock moves this one too
        self.token_lifetime_s = token_lifetime_s
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_email = f"push@{project_id}.iam.gserviceaccount.com"
        self.token_requests = 0
        self.issued: dict[str, float] = {}
        self.messages: list[dict[str, Any]] = []  # every valid message received
        self.delivered: list[dict[str, Any]] = []  # those answered 200
        self.errors: list[str] = []
        self._replies: list[FcmReply] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def write_credentials(self, path: Path) -> Path:
        """A service-account JSON like Firebase's, whose token_uri is this server."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path.write_text(json.dumps({
            "type": "service_account", "project_id": self.project_id,
            "private_key_id": self.key_id, "private_key": pem,
            "client_email": self.client_email, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.base_url}/token",
        }))
        return path

    def respond(self, kind: str, *, retry_after: str | None = None, times: int = 1) -> None:
        self._replies.extend(FcmReply(kind, retry_after) for _ in range(times))

    def _fail(self, status: int, why: str) -> web.Response:
        self.errors.append(why)
        return web.json_response({"error": why}, status=status)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._fail(400, f"grant_type {form.get('grant_type')!r}")
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion, self.key.public_key(), algorithms=["RS256"],
                audience=GOOGLE_TOKEN_URI, options={
                    "require": ["iss", "aud", "iat", "exp"], "verify_exp": False,
                    "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            return self._fail(400, f"assertion does not verify: {exc!r}")
        if header.get("kid") != self.key_id:
            return self._fail(400, "assertion kid is not the service account's key id")
        if claims["iss"] != self.client_email:
            return self._fail(400, f"assertion iss {claims['iss']!r}")
        if claims.get("scope") != FCM_SCOPE:
            return self._fail(400, f"assertion scope {claims.get('scope')!r}")
        if not 0 < claims["exp"] - claims["iat"] <= 3600:
            return self._fail(400, "assertion lives more than an hour")
        now = self.clock()
        if not claims["iat"] - 60 <= now < claims["exp"]:
            return self._fail(400, "assertion is not valid now")
        token = "ya29.test-" + secrets.token_urlsafe(24)
        self.issued[token] = self.clock() + self.token_lifetime_s
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime_s,
                                  "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        if request.match_info["project"] != self.project_id:
            status, body = _error(404, "NOT_FOUND", "project not found")
            return web.json_response(body, status=status)
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if self.issued.get(token, 0) < self.clock():
            self.errors.append("unknown or expired bearer token")
            status, body = _error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                  "credentials.", code="UNAUTHENTICATED")
            return web.json_response(body, status=status)
        try:
            message = (await request.json())["message"]
            why = self._check_message(message)
        except (ValueError, KeyError, TypeError) as exc:
            why = f"not a v1 message: {exc!r}"
        if why:
            return self._fail(400, why)
        self.messages.append(message)
        reply = self._replies.pop(0) if self._replies else FcmReply("ok")
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
        if reply.kind == "ok":
            self.delivered.append(message)
            name = f"projects/{self.project_id}/messages/{len(self.delivered)}"
            return web.json_response({"name": name})
        status, body = {
            "unregistered": lambda: _error(404, "NOT_FOUND", "Requested entity was not found.",
                                           code="UNREGISTERED"),
            "invalid_token": lambda: _error(
                400, "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                code="INVALID_ARGUMENT", field="message.token"),
            "invalid_payload": lambda: _error(
                400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'",
                field="message.data[0].value"),
            "throttled": lambda: _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.",
                                        code="QUOTA_EXCEEDED"),
            "unavailable": lambda: _error(503, "UNAVAILABLE", "The service is unavailable.",
                                          code="UNAVAILABLE"),
        }[reply.kind]()
        return web.json_response(body, status=status, headers=headers)

    @staticmethod
    def _check_message(message: dict[str, Any]) -> str | None:
        if not isinstance(message.get("token"), str) or not message["token"]:
            return "message.token missing"
        note = message.get("notification", {})
        if not all(isinstance(note.get(k), str) for k in ("title", "body")):
            return "notification.title/body must be strings"
        data = message.get("data", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            return "data values must be strings"
        android = message.get("android", {})
        if "ttl" in android and not re.fullmatch(r"\d+(\.\d+)?s", str(android["ttl"])):
            return f"android.ttl {android['ttl']!r} is not a duration"
        return None
