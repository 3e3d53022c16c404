"""A Web Push endpoint on loopback that does what a push service and a browser would.

For every POST it checks the request as a push service does (RFC 8030 headers,
``Content-Encoding: aes128gcm``, a VAPID ``Authorization`` whose ES256 signature
``py_vapid`` verifies and whose claims name this origin, are unexpired and carry a
``sub``) and then decrypts the body with the subscription's private key and auth
secret, as the browser would (``http_ece.decrypt(..., version="aes128gcm")``).

``subscribe()`` makes a new "browser" subscription. ``respond(status, ...)`` queues
the next answers (201 by default; 404/410/429 with ``Retry-After``/500 on demand).
``hold()`` keeps every request waiting (counted in ``waiting``) until ``release()``: a
push service that is slow to answer, for tests that stop a node mid-batch.
Every request is in ``attempts``; accepted ones also in ``delivered``; anything that
fails the checks is answered 400/401 and described in ``errors`` (tests assert it is
empty).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from server.push.provider import WebPushKeys, WebPushSubscription


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    subscription: WebPushSubscription


@dataclass
class Attempt:
    browser_id: str
    status: int  # what the endpoint answered
    headers: dict[str, str]
    payload: dict[str, Any] | None  # decrypted JSON
    vapid_claims: dict[str, Any] | None
    vapid_key: str | None  # the ``k=`` public key


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class WebPushEndpoint:
    def __init__(self, *, expected_subject: str | None = None,
                 expected_public_key: str | None = None) -> None:
        self.expected_subject = expected_subject
        self.expected_public_key = expected_public_key
        self.browsers: dict[str, Browser] = {}
        self.attempts: list[Attempt] = []
        self.delivered: list[Attempt] = []
        self.errors: list[str] = []
        self._replies: list[Reply] = []
        self._gate: asyncio.Event | None = None
        self.waiting = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._counter = 0

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application(client_max_size=16 * 1024)
        app.router.add_post("/push/{id}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def subscribe(self, base_url: str | None = None) -> WebPushSubscription:
        """A new browser subscription (``base_url`` overrides the endpoint's origin, for
        tests that reach this server under another name)."""
        self._counter += 1
        browser_id = f"sub{self._counter}-{_b64(os.urandom(6))}"
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sub = WebPushSubscription(
            endpoint=f"{base_url or self.base_url}/push/{browser_id}",
            keys=WebPushKeys(p256dh=_b64(public), auth=_b64(auth)),
        )
        self.browsers[browser_id] = Browser(browser_id, key, auth, sub)
        return sub

    def respond(self, status: int, *, retry_after: str | None = None,
                location: str | None = None, times: int = 1) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if location is not None:
            headers["Location"] = location
        self._replies.extend(Reply(status, dict(headers)) for _ in range(times))

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def for_browser(self, sub: WebPushSubscription) -> list[Attempt]:
        browser_id = sub.endpoint.rsplit("/", 1)[1]
        return [a for a in self.delivered if a.browser_id == browser_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)

    def _fail(self, status: int, why: str) -> web.Response:
        self.errors.append(why)
        return web.Response(status=status, text=why)

    async def _push(self, request: web.Request) -> web.Response:
        browser = self.browsers.get(request.match_info["id"])
        if browser is None:
            return web.Response(status=404)
        headers = {k: v for k, v in request.headers.items()}
        body = await request.read()
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._fail(400, "Content-Encoding is not aes128gcm")
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            return self._fail(400, f"TTL header missing or not a number: {ttl!r}")
        claims, key, why = self._check_vapid(request)
        if why:
            return self._fail(401, why)
        try:
            plain = http_ece.decrypt(
                body, private_key=browser.private_key, auth_secret=browser.auth_secret,
                version="aes128gcm",
            )
            payload = json.loads(plain)
        except Exception as exc:
            return self._fail(400, f"cannot decrypt: {exc!r}")
        gate = self._gate
        if gate is not None:
            self.waiting += 1
            try:
                await gate.wait()
            finally:
                self.waiting -= 1
        reply = self._replies.pop(0) if self._replies else Reply(201)
        attempt = Attempt(browser.id, reply.status, headers, payload, claims, key)
        self.attempts.append(attempt)
        if reply.status < 300:
            self.delivered.append(attempt)
            reply.headers.setdefault("Location", f"{self.base_url}/message/{len(self.delivered)}")
        return web.Response(status=reply.status, headers=reply.headers)

    def _check_vapid(self, request: web.Request
                     ) -> tuple[dict[str, Any] | None, str | None, str | None]:
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("vapid "):
            return None, None, f"no VAPID Authorization: {auth[:20]!r}"
        parts = dict(p.strip().split("=", 1) for p in auth[6:].split(",") if "=" in p)
        token, key = parts.get("t"), parts.get("k")
        if not token or not key:
            return None, None, "VAPID header without t= or k="
        try:
            valid = Vapid02.verify(auth)
        except Exception as exc:
            return None, key, f"VAPID verify raised {exc!r}"
        if not valid:
            return None, key, "VAPID signature does not verify"
        claims = json.loads(_unb64(token.split(".")[1]))
        origin = f"{request.scheme}://{request.host}"
        now = time.time()
        if claims.get("aud") != origin:
            return claims, key, f"VAPID aud {claims.get('aud')!r} is not {origin!r}"
        if not now < int(claims.get("exp", 0)) <= now + 86400:
            return claims, key, "VAPID exp not within 24 hours"
        if not claims.get("sub"):
            return claims, key, "VAPID claims without sub"
        if self.expected_subject is not None and claims["sub"] != self.expected_subject:
            return claims, key, f"VAPID sub {claims['sub']!r}"
        if self.expected_public_key is not None and key != self.expected_public_key:
            return claims, key, "VAPID k= is not the server's public key"
        return claims, key, None
