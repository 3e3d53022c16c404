"""An APNs-shaped HTTP/2 server on loopback: raw ``h2`` over TLS with a test CA.

Each ``POST /3/device/<token>`` must carry a provider JWT that verifies (ES256) with
the public part of the test ``.p8`` key, names the team (``iss``) and key (``kid``)
and was issued within the last hour of ``clock``; ``apns-topic`` must be the app's
topic, ``apns-push-type`` set, and the body a JSON object with ``aps``. Then it
answers what ``respond()`` queued: 200 (echoing ``apns-id``), 410 ``Unregistered``,
429 ``TooManyRequests`` (optional ``retry-after``), 500, or 403
``ExpiredProviderToken``. A request failing a check is answered 403/400 and
described in ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.tls import TestCA


@dataclass
class ApnsRequest:
    device_token: str
    headers: dict[str, str]
    body: dict[str, Any]
    jwt: str
    status: int


@dataclass
class _Stream:
    headers: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


class ApnsServer:
    def __init__(self, ca: TestCA, *, team_id: str = "TEAM123456", key_id: str = "KEY1234567",
                 topic: str = "com.petspark.app",
                 clock: Callable[[], float] = time.time) -> None:
        self.ca = ca
        self.team_id = team_id
        self.key_id = key_id
        self.topic = topic
        self.clock = clock
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.requests: list[ApnsRequest] = []
        self.delivered: list[ApnsRequest] = []
        self.errors: list[str] = []
        self.connections = 0
        self._replies: list[tuple[int, str | None, str | None]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.base_url = ""

    def write_key(self, path: Path) -> Path:
        path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
        return path

    @property
    def tokens_seen(self) -> list[str]:
        return [r.jwt for r in self.requests]

    def respond(self, status: int, *, reason: str | None = None,
                retry_after: str | None = None, times: int = 1) -> None:
        self._replies.extend((status, reason, retry_after) for _ in range(times))

    async def start(self) -> str:
        self._server = await asyncio.start_server(
            self._on_connection, "127.0.0.1", 0, ssl=self.ca.server_context(alpn=["h2"])
        )
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"https://localhost:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # the connection's loop sees EOF and ends
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=5)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"
        ))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, _Stream] = {}
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = _Stream(
                            {str(k): str(v) for k, v in event.headers}
                        )
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id].data += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = streams.pop(event.stream_id)
                        status, headers, body = self._handle(stream)
                        conn.send_headers(event.stream_id, [(":status", str(status)), *headers],
                                          end_stream=not body)
                        if body:
                            conn.send_data(event.stream_id, body, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reject(self, status: int, reason: str, why: str
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        self.errors.append(why)
        return status, [("content-type", "application/json")], json.dumps(
            {"reason": reason}).encode()

    def _handle(self, stream: _Stream) -> tuple[int, list[tuple[str, str]], bytes]:
        h = stream.headers
        path = h.get(":path", "")
        if h.get(":method") != "POST" or not path.startswith("/3/device/"):
            return self._reject(405, "MethodNotAllowed", f"{h.get(':method')} {path}")
        auth = h.get("authorization", "")
        if not auth.startswith("bearer "):
            return self._reject(403, "MissingProviderToken", "no bearer provider token")
        token = auth[7:]
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.key.public_key(), algorithms=["ES256"],
                                options={"verify_iat": False, "require": ["iss", "iat"]})
        except jwt.PyJWTError as exc:
            return self._reject(403, "InvalidProviderToken", f"JWT does not verify: {exc!r}")
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return self._reject(403, "InvalidProviderToken", "JWT kid/iss mismatch")
        now = self.clock()
        if not now - 3600 < claims["iat"] <= now + 60:
            return self._reject(403, "ExpiredProviderToken", "JWT older than an hour")
        if h.get("apns-topic") != self.topic:
            return self._reject(400, "BadTopic", f"apns-topic {h.get('apns-topic')!r}")
        if h.get("apns-push-type") not in ("alert", "background"):
            return self._reject(400, "InvalidPushType", "apns-push-type missing")
        try:
            body = json.loads(bytes(stream.data))
            assert isinstance(body, dict) and isinstance(body.get("aps"), dict)
        except (ValueError, AssertionError):
            return self._reject(400, "PayloadEmpty", "body is not an aps JSON object")
        apns_id = h.get("apns-id") or str(uuid.uuid4()).upper()
        status, reason, retry_after = self._replies.pop(0) if self._replies else (200, None, None)
        request = ApnsRequest(path.rsplit("/", 1)[1], h, body, token, status)
        self.requests.append(request)
        headers = [("apns-id", apns_id)]
        if status == 200:
            self.delivered.append(request)
            return 200, headers, b""
        if retry_after is not None:
            headers.append(("retry-after", retry_after))
        reason = reason or {410: "Unregistered", 429: "TooManyRequests",
                            403: "ExpiredProviderToken"}.get(status, "InternalServerError")
        payload: dict[str, Any] = {"reason": reason}
        if status == 410:
            payload["timestamp"] = int(now * 1000)
        headers.append(("content-type", "application/json"))
        return status, headers, json.dumps(payload).encode()
