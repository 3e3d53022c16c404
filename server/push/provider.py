"""The push contract: what a provider is given, what it answers, and the one interface.

The outbox worker (issue #14, second step) picks one ``PushProvider`` per device
platform and calls ``send(device, payload)``. The answer is a ``PushResult`` it can
act on without knowing the provider:

- ``SENT``: the provider accepted the message (for ``LogPushProvider``: it was
  recorded instead, ``logged`` is true). Done.
- ``GONE``: the provider says the token or subscription no longer exists (FCM
  ``UNREGISTERED``, APNs 410, Web Push 404/410). Remove the device; done.
- ``RETRY``: a temporary failure (429, 5xx, network, an expired credential that
  was just renewed). Try again later, not before ``retry_after_s`` when the
  provider said so (``Retry-After``), up to ``PUSH_MAX_ATTEMPTS``.
- ``FAILED``: this message will never be accepted (bad request, payload too
  large, an endpoint the server-side request forgery guard refuses). Drop it.

``send`` never raises for anything the provider or the network did: every such
case is a result. It records ``petspark_pushes_total{provider, outcome}`` and,
for anything but a plain success, one log line (device id, status, reason —
never the payload).
"""

from __future__ import annotations

import abc
import base64
import email.utils
import enum
import hashlib
import logging
import re
import time
from typing import Any, Literal

import msgspec

from server.observability.metrics import Metrics

log = logging.getLogger(__name__)

Platform = Literal["fcm", "apns", "webpush"]
PLATFORMS: tuple[Platform, ...] = ("fcm", "apns", "webpush")

# Providers cap the whole message near 4 KiB (FCM 4096 bytes of data, APNs 4096 bytes,
# Web Push 4096 bytes of encrypted record). The JSON payload is kept well under that.
MAX_PAYLOAD_BYTES = 3072
MAX_TITLE_CHARS = 120
MAX_BODY_CHARS = 1000
MAX_DATA_ENTRIES = 16
MAX_DATA_VALUE_CHARS = 256
DEFAULT_TTL_S = 86_400
MAX_TTL_S = 2_419_200  # 28 days: FCM's and Web Push services' usual maximum
MAX_RETRY_AFTER_S = 86_400.0

_DATA_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class WebPushKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The subscription's keys as the browser gives them (URL-safe base64)."""

    p256dh: str
    auth: str


class WebPushSubscription(msgspec.Struct, frozen=True, kw_only=True):
    """``PushSubscription.toJSON()`` less ``expirationTime``: what ``devices.register`` takes."""

    endpoint: str
    keys: WebPushKeys


class PushDevice(msgspec.Struct, frozen=True, kw_only=True):
    """Where to push: a device row as the worker reads it.

    ``token`` for ``fcm`` and ``apns``; ``subscription`` for ``webpush``.
    ``id`` appears in logs only.
    """

    id: str
    platform: Platform
    token: str | None = None
    subscription: WebPushSubscription | None = None


class PushPayload(msgspec.Struct, frozen=True, kw_only=True):
    """One notification as a push. ``to_wire()`` is exactly what reaches the app.

    ``collapse_key``: pushes with the same key replace each other on the device
    (chat: one per conversation): FCM ``collapse_key`` and notification ``tag``,
    APNs ``apns-collapse-id``, Web Push ``Topic``. ``ttl_s``: how long the provider
    keeps it for an unreachable device.
    """

    kind: str
    title: str
    body: str
    data: dict[str, str] = {}
    unread_count: int = 0
    collapse_key: str | None = None
    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if not self.kind or len(self.kind) > 64:
            raise ValueError("kind: expected 1..64 characters")
        if len(self.data) > MAX_DATA_ENTRIES:
            raise ValueError(f"data: at most {MAX_DATA_ENTRIES} entries")
        for key, value in self.data.items():
            if not _DATA_KEY.match(key):
                raise ValueError(f"data: key {key!r} must match {_DATA_KEY.pattern}")
            if len(value) > MAX_DATA_VALUE_CHARS:
                raise ValueError(f"data.{key}: at most {MAX_DATA_VALUE_CHARS} characters")
        if self.unread_count < 0:
            raise ValueError("unread_count: must not be negative")
        if not 0 <= self.ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s: expected 0..{MAX_TTL_S}")
        if self.collapse_key is not None and not 1 <= len(self.collapse_key) <= 200:
            raise ValueError("collapse_key: expected 1..200 characters")

    @property
    def short_title(self) -> str:
        return _clip(self.title, MAX_TITLE_CHARS)

    @property
    def short_body(self) -> str:
        return _clip(self.body, MAX_BODY_CHARS)

    def to_wire(self) -> dict[str, Any]:
        """``{kind, title, body, data, unread_count}`` — and nothing more."""
        return {
            "kind": self.kind,
            "title": self.short_title,
            "body": self.short_body,
            "data": dict(self.data),
            "unread_count": self.unread_count,
        }

    def to_json(self) -> bytes:
        return fit_json(self.to_wire())

    def collapse_id(self, max_bytes: int, *, url_safe: bool = False) -> str | None:
        """The collapse key as a provider takes it: itself when it fits ``max_bytes`` (and,
        with ``url_safe``, uses only base64url characters, as RFC 8030's ``Topic`` must),
        else a stable hash of it in that many characters."""
        key = self.collapse_key
        if key is None:
            return None
        fits = len(key.encode()) <= max_bytes
        if fits and (not url_safe or re.fullmatch(r"[A-Za-z0-9_-]+", key)):
            return key
        digest = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).rstrip(b"=")
        return digest.decode()[:max_bytes]


class PayloadTooLarge(ValueError):
    """The payload does not fit a push even with its body shortened."""


_json = msgspec.json.Encoder()


def fit_json(wire: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Encode ``wire``; shorten ``body`` (then ``title``) until it fits ``limit`` bytes."""
    encoded = _json.encode(wire)
    if len(encoded) <= limit:
        return encoded
    wire = dict(wire)
    for field in ("body", "title"):
        text: str = wire[field]
        while text and len(encoded) > limit:
            # Drop about as many characters as we are over (escapes make bytes ≥ chars).
            over = len(encoded) - limit
            text = text[: max(0, len(text) - max(over, 8))]
            wire[field] = (text.rstrip() + "…") if text else ""
            encoded = _json.encode(wire)
        if len(encoded) <= limit:
            return encoded
    raise PayloadTooLarge(f"payload is {len(encoded)} bytes even without title and body")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class Outcome(enum.StrEnum):
    SENT = "sent"
    GONE = "gone"
    RETRY = "retry"
    FAILED = "failed"


class PushResult(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one push; see the module docstring for what to do with each."""

    outcome: Outcome
    retry_after_s: float | None = None  # only with RETRY, when the provider said
    status: int | None = None  # the provider's HTTP status, when there was one
    reason: str | None = None  # the provider's error code or ours (``endpoint_refused``)
    provider_id: str | None = None  # apns-id, FCM message name, Web Push Location
    logged: bool = False  # LogPushProvider: recorded, not sent

    @classmethod
    def sent(cls, *, status: int | None = None, provider_id: str | None = None) -> PushResult:
        return cls(outcome=Outcome.SENT, status=status, provider_id=provider_id)

    @classmethod
    def gone(cls, *, status: int | None = None, reason: str | None = None) -> PushResult:
        return cls(outcome=Outcome.GONE, status=status, reason=reason)

    @classmethod
    def retry(
        cls, *, status: int | None = None, reason: str | None = None,
        retry_after_s: float | None = None,
    ) -> PushResult:
        return cls(outcome=Outcome.RETRY, status=status, reason=reason,
                   retry_after_s=retry_after_s)

    @classmethod
    def failed(cls, *, status: int | None = None, reason: str | None = None) -> PushResult:
        return cls(outcome=Outcome.FAILED, status=status, reason=reason)

    @property
    def metric_outcome(self) -> str:
        """The ``outcome`` label: sent / gone / retry / dropped (FAILED) / logged."""
        if self.logged:
            return "logged"
        if self.outcome is Outcome.FAILED:
            return "dropped"
        return self.outcome.value


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110).

    Unparseable → None (the caller's own backoff applies); clamped to 0..1 day.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    seconds: float
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class PushProvider(abc.ABC):
    """Sends pushes to one platform. One instance per process, shared by every send.

    Subclasses implement ``_deliver``; ``send`` adds the metric and the log line.
    ``close`` releases connections; a closed provider must not be used again.
    """

    #: ``provider`` label in metrics and logs: ``webpush``, ``fcm``, ``apns``, ``log``.
    name: str

    def __init__(self, *, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def send(self, device: PushDevice, payload: PushPayload) -> PushResult:
        result = await self._deliver(device, payload)
        if self._metrics is not None:
            self._metrics.pushes.labels(self.name, result.metric_outcome).inc()
        if result.outcome is not Outcome.SENT:
            level = logging.INFO if result.outcome is Outcome.GONE else logging.WARNING
            log.log(level, "push not delivered", extra={
                "provider": self.name, "device_id": device.id, "outcome": result.outcome.value,
                "status": result.status, "reason": result.reason,
                "retry_after_s": result.retry_after_s, "kind": payload.kind,
            })
        return result

    @abc.abstractmethod
    async def _deliver(self, device: PushDevice, payload: PushPayload) -> PushResult: ...

    async def close(self) -> None:  # noqa: B027 - providers without connections need nothing
        """Release connections and threads."""
