"""Devices, push preferences, and the worker that pushes each notification once per device.

Commands: ``devices.register`` / ``devices.unregister`` / ``devices.list``,
``push.config``, ``notifications.preferences`` (PROTOCOL §10.6).

The worker runs on every node (``start``/``stop``) and works the ``push_outbox`` that
``notify`` fills in the change's transaction:

1. **Decide** (one transaction per batch, rows locked ``FOR UPDATE SKIP LOCKED``): a due
   row — at once for a user with no live socket when it was written, else after
   ``PUSH_DELAY_S`` — is skipped when push is off, its kind muted, the notification read,
   its event acked (``stream_acks``, written by every node), a newer push of the same
   conversation is queued (chat collapses), it is over a day old, or the user has no
   device. Otherwise one delivery row per device the user has *now* is written (a device
   registered meanwhile included). Either way the row is marked handled in that
   transaction: two nodes never decide one row twice.
2. **Send**: a delivery is claimed by committing ``state = 'sending'`` with a lease and
   its attempt number (``SKIP LOCKED`` again), then sent through the platform's provider,
   then its outcome is committed (batched with others that finished meanwhile) — only if
   that attempt still owns the row. Sent, failed and dropped are final; gone removes the
   device; retry goes back to pending after a jittered backoff (``Retry-After`` when the
   provider gave one) until ``PUSH_MAX_ATTEMPTS``, then it is dropped and counted.

A crash between the provider accepting a push and the outcome's commit leaves the row
'sending'; when its lease expires another worker sends it again. That is the one case
where a device can get a push twice, chosen over losing it: the second copy carries the
same ``notification_id`` (and, for chat, the same collapse key), so the device replaces
rather than adds. A graceful stop never causes it: it waits for pushes in flight and
commits their outcomes. See docs/protocol.md, "Push delivery".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import asyncpg
from msgspec import UNSET, UnsetType

from protocol.base import Empty
from protocol.notifications import (
    DeviceResult,
    DevicesRegister,
    DevicesResult,
    NotificationPreferences,
    NotificationPreferencesResult,
    PushConfigResult,
)
from protocol.objects import Device, Platform
from server.deps import Deps
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.notifications.service import PUSH_SIGNAL
from server.domain.push import store
from server.domain.push.payload import build_payload
from server.errors import BadRequest, NotFound
from server.ids import require_id
from server.push.provider import (
    DEFAULT_TTL_S,
    Outcome,
    PushDevice,
    PushProvider,
    PushResult,
    WebPushKeys,
    WebPushSubscription,
)
from server.push.provider import Platform as PushPlatform
from server.realtime.stream import Transaction

log = logging.getLogger(__name__)

LEASE_S = 120.0
"""How long a claimed delivery belongs to its worker: longer than any provider call
(each has a 10 s timeout; FCM may fetch a token first)."""
BATCH = 200
MAX_AGE_S = float(DEFAULT_TTL_S)
"""A notification older than this when it falls due is not pushed (e.g. after an outage)."""
MAX_BACKOFF_S = 3600.0
MIN_IDLE_S = 0.02
"""Shortest wait between rounds when rows are due but locked by another node."""
STOP_TIMEOUT_S = 30.0
DECIDE_EVERY_S = 0.05
"""While pushes flow, due outbox rows are looked for at most this often (and at once
after a commit on this node signalled new rows)."""
PRUNE_EVERY_S = 3600.0
KEEP_HANDLED_S = 7 * 86_400.0

_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{32,4096}$")
_APNS_TOKEN = re.compile(r"^(?:[0-9a-fA-F]{2}){16,100}$")


class Providers(Protocol):
    """What this service needs of ``server.push.factory.PushProviders``."""

    def for_platform(self, platform: PushPlatform) -> PushProvider: ...

    @property
    def webpush_public_key(self) -> str | None: ...

    async def check_subscription(self, subscription: WebPushSubscription) -> None: ...


@dataclass(slots=True)
class Finished:
    """One attempt's outcome, as committed to its delivery row."""

    outbox_id: int
    device_id: str
    attempt: int
    state: str  # sent | gone | failed | dropped | skipped | pending (retry)
    provider: str | None = None
    status: int | None = None
    reason: str | None = None
    retry_in_s: float | None = None


def skip_reason(row: Any, now: datetime) -> str | None:
    """Why a due outbox row is not pushed (None: push it)."""
    if not row["push_on"]:
        return "push_off"
    if row["kind"] in row["muted_kinds"]:
        return "muted"
    if row["read"]:
        return "read"
    if row["event_seq"] is not None and row["acked_seq"] >= row["event_seq"]:
        return "acked"
    if row["superseded"]:
        return "collapsed"
    if (now - row["created_at"]).total_seconds() > MAX_AGE_S:
        return "expired"
    if not row["has_devices"]:
        return "no_devices"
    return None


def stale_reason(row: Any) -> str | None:
    """Why a claimed delivery is no longer wanted (checked again at every attempt)."""
    if not row["same_owner"]:
        return "device_moved"
    if row["acked"]:
        return "acked"
    if row["read"]:
        return "read"
    if not row["push_on"]:
        return "push_off"
    if row["muted"]:
        return "muted"
    return None


class PushService:
    def __init__(self, deps: Deps, providers: Providers, *,
                 rng: Callable[[], float] = random.random) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.settings = deps.settings
        self.limiter = deps.limiter
        self.metrics = deps.metrics
        self.providers = providers
        self.lease_s = LEASE_S
        self._rng = rng
        self._wake = asyncio.Event()
        self._signalled = True
        self._next_decide = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._results: list[Finished] = []
        self._flusher: asyncio.Task[None] | None = None

    # --- commands ---------------------------------------------------------------------

    async def register_device(self, user_id: str, cmd: DevicesRegister) -> DeviceResult:
        settings = self.settings
        await self.limiter.take(f"devices:register:{user_id}", settings.push_register_per_hour,
                                3600, "devices.register: too many registrations; retry later")
        p256dh = auth = None
        if cmd.platform is Platform.WEBPUSH:
            assert cmd.subscription is not None  # the Struct checked it
            subscription = WebPushSubscription(
                endpoint=cmd.subscription.endpoint,
                keys=WebPushKeys(p256dh=cmd.subscription.keys.p256dh,
                                 auth=cmd.subscription.keys.auth))
            await self.providers.check_subscription(subscription)  # bad_request if refused
            token = subscription.endpoint
            p256dh, auth = subscription.keys.p256dh, subscription.keys.auth
        elif cmd.platform is Platform.FCM:
            token = cmd.token or ""
            if not _FCM_TOKEN.match(token):
                raise BadRequest("token: expected an FCM registration token")
        else:
            token = (cmd.token or "").lower()
            if not _APNS_TOKEN.match(token):
                raise BadRequest("token: expected an APNs device token (hex digits)")

        async def work(tx: Transaction) -> DeviceResult:
            row = await store.upsert_device(tx.conn, user_id, cmd.platform.value, token,
                                            p256dh, auth)
            await store.delete_devices_over(tx.conn, user_id,
                                            settings.push_max_devices_per_user)
            return DeviceResult(device=_device(row))

        return await run_idempotent(self.stream, user_id=user_id, scope="devices.register",
                                    key=cmd.idempotency_key, result_type=DeviceResult,
                                    work=work)

    async def unregister_device(self, user_id: str, device_id: str) -> Empty:
        parsed = require_id(device_id, "device_id", "no such device")
        if not await store.delete_device(self.db, user_id, parsed):
            raise NotFound("device_id: no such device")
        return Empty()

    async def list_devices(self, user_id: str, cursor: str | None, limit: int
                           ) -> DevicesResult:
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, did = decode_cursor(cursor, (datetime, str))
            after = (at, did)
        rows = await store.select_devices(self.db, user_id, after=after, limit=limit + 1)
        more = len(rows) > limit
        devices = [_device(r) for r in rows[:limit]]
        return DevicesResult(
            devices=devices,
            next_cursor=encode_cursor(devices[-1].created_at, devices[-1].id) if more else None)

    def push_config(self) -> PushConfigResult:
        return PushConfigResult(webpush_public_key=self.providers.webpush_public_key)

    async def preferences(self, user_id: str, muted_kinds: list[str] | UnsetType,
                          push: bool | UnsetType) -> NotificationPreferencesResult:
        if muted_kinds is UNSET and push is UNSET:
            row = await store.select_preferences(self.db, user_id)
        else:
            row = await store.upsert_preferences(
                self.db, user_id,
                muted_kinds=None if muted_kinds is UNSET else list(dict.fromkeys(muted_kinds)),
                push=None if push is UNSET else push)
        prefs = (NotificationPreferences(muted_kinds=[], push=True) if row is None else
                 NotificationPreferences(muted_kinds=list(row["muted_kinds"]), push=row["push"]))
        return NotificationPreferencesResult(preferences=prefs)

    # --- the worker ---------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self.stream.listen(PUSH_SIGNAL, self.wake)
        self._task = asyncio.create_task(self._run(), name="push-worker")

    async def stop(self) -> None:
        """Stop claiming; let pushes in flight finish and commit their outcomes."""
        self.stream.unlisten(PUSH_SIGNAL, self.wake)
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("push worker did not stop in time; leases expire and another node "
                        "resends", extra={"in_flight": len(self._in_flight)})
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look at the outbox now (rows were committed on this node)."""
        self._signalled = True
        self._wake.set()

    async def _run(self) -> None:
        last_prune = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            try:
                if await self.work_once():
                    continue
                delay = await self._idle_delay()
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    await store.delete_handled_outbox(self.db, KEEP_HANDLED_S)
            except Exception:
                log.exception("push worker round failed; retrying")
                delay = self.settings.push_poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        if self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _idle_delay(self) -> float:
        poll = self.settings.push_poll_s
        free = self.settings.push_concurrency - len(self._in_flight)
        if self._in_flight and free < self._claim_batch():
            return poll  # a finishing push wakes us
        due = await store.select_next_due_s(self.db, self.settings.push_delay_s)
        if due is None:
            return poll
        return min(max(due, MIN_IDLE_S), poll)

    async def work_once(self) -> bool:
        """Decide due outbox rows and start due deliveries; True if there was any."""
        decided = 0
        now = time.monotonic()
        if self._signalled or now >= self._next_decide:
            self._signalled = False
            decided = await self.decide_due()
            self._next_decide = now + (0.0 if decided >= BATCH else DECIDE_EVERY_S)
        free = self.settings.push_concurrency - len(self._in_flight)
        started = 0
        if free >= self._claim_batch() and not self._stopping:
            started = await self._start_deliveries(free)
        return decided > 0 or started > 0

    def _claim_batch(self) -> int:
        """Claim in batches while pushes are in flight: a claim per finished push would be
        a transaction per push."""
        return max(1, self.settings.push_concurrency // 4) if self._in_flight else 1

    async def decide_due(self) -> int:
        """Decide up to one batch of due outbox rows now; how many."""
        now = datetime.now(UTC)
        async with self.db.acquire() as conn, conn.transaction():
            rows = await store.claim_due_outbox(conn, self.settings.push_delay_s, BATCH)
            if not rows:
                return 0
            outcomes = {r["id"]: skip_reason(r, now) for r in rows}
            wanted = [r for r in rows if outcomes[r["id"]] is None]
            counts = await store.insert_deliveries(
                conn, [r["id"] for r in wanted], [r["user_id"] for r in wanted]
            ) if wanted else {}
            final = {oid: why or ("queued" if counts.get(oid) else "no_devices")
                     for oid, why in outcomes.items()}
            await store.update_outbox_handled(conn, list(final), list(final.values()))
        for outcome in final.values():
            self.metrics.push_outbox.labels(outcome).inc()
        return len(rows)

    async def _start_deliveries(self, limit: int) -> int:
        async with self.db.acquire() as conn:
            async with conn.transaction():
                rows = await store.claim_deliveries(conn, limit, self.lease_s)
            if not rows:
                return 0
            unread = await store.select_unread_counts(conn, [r["user_id"] for r in rows])
        for row in rows:
            task = asyncio.create_task(self._deliver(row, unread.get(row["user_id"], 0)))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)
        return len(rows)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _deliver(self, row: asyncpg.Record, unread: int) -> None:
        base = {"outbox_id": row["outbox_id"], "device_id": row["device_id"],
                "attempt": row["attempts"]}
        stale = stale_reason(row)
        if stale is not None:
            log.info("push skipped", extra={"device_id": row["device_id"], "reason": stale,
                                            "notification_id": row["notification_id"]})
            self._finish(Finished(**base, state="skipped", reason=stale))
            return
        platform = cast(PushPlatform, row["platform"])
        provider = self.providers.for_platform(platform)
        if row["attempts"] > self.settings.push_max_attempts:  # reclaimed after crashes
            self._dropped(provider.name, row, None)
            self._finish(Finished(**base, state="dropped", provider=provider.name,
                                  reason="max_attempts"))
            return
        try:
            result = await provider.send(_push_device(row), build_payload(
                notification_id=row["notification_id"], kind=row["kind"], title=row["title"],
                body=row["body"], data=dict(row["data"]), unread_count=unread,
                collapse_key=row["collapse_key"]))
        except Exception:
            log.exception("push provider raised", extra={"provider": provider.name,
                                                         "device_id": row["device_id"]})
            result = PushResult.retry(reason="internal_error")
        self._finish(self._outcome(base, provider.name, row, result))

    def _outcome(self, base: dict[str, Any], provider: str, row: asyncpg.Record,
                 result: PushResult) -> Finished:
        common = {**base, "provider": provider, "status": result.status,
                  "reason": result.reason}
        if result.outcome is Outcome.SENT:
            return Finished(**{**common, "reason": "logged" if result.logged else None},
                            state="sent")
        if result.outcome is Outcome.GONE:
            return Finished(**common, state="gone")
        if result.outcome is Outcome.FAILED:
            return Finished(**common, state="failed")
        if row["attempts"] >= self.settings.push_max_attempts:
            self._dropped(provider, row, result)
            return Finished(**common, state="dropped")
        return Finished(**common, state="pending",
                        retry_in_s=self.backoff_s(row["attempts"], result.retry_after_s))

    def _dropped(self, provider: str, row: asyncpg.Record, result: PushResult | None) -> None:
        self.metrics.pushes.labels(provider, "dropped").inc()
        log.warning("push dropped after its last attempt", extra={
            "provider": provider, "device_id": row["device_id"], "attempts": row["attempts"],
            "notification_id": row["notification_id"],
            "status": result.status if result else None,
            "reason": result.reason if result else "max_attempts"})

    def backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds before the next attempt: the provider's ``Retry-After`` (plus up to 10%,
        at most 1 s, so a crowd that was told the same second spreads out), else
        ``PUSH_RETRY_BASE_S`` doubling per attempt, jittered to 50-100%."""
        if retry_after_s is not None:
            return retry_after_s + self._rng() * min(1.0, retry_after_s * 0.1)
        ceiling = min(MAX_BACKOFF_S,
                      self.settings.push_retry_base_s * 2.0 ** max(0, attempt - 1))
        return float(ceiling * (0.5 + 0.5 * self._rng()))

    def _finish(self, finished: Finished) -> None:
        self._results.append(finished)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_results(), name="push-results")

    async def _flush_results(self) -> None:
        """Commit finished attempts; those finishing meanwhile go in the next statement."""
        failures = 0
        while self._results:
            batch, self._results = self._results, []
            gone = sorted({f.device_id for f in batch if f.state == "gone"})
            try:
                async with self.db.acquire() as conn, conn.transaction():
                    await store.update_deliveries_finished(conn, batch)
                    if gone:
                        await store.delete_devices_by_id(conn, gone)
            except Exception:
                failures += 1
                if failures > 5:
                    log.exception("push outcomes not recorded; their leases expire and they "
                                  "are sent again", extra={"deliveries": len(batch)})
                    return
                log.warning("push outcomes not recorded yet; retrying", exc_info=True)
                self._results[:0] = batch
                await asyncio.sleep(0.5 * failures)
                continue
            for device_id in gone:
                log.info("device removed: the provider says it is gone",
                         extra={"device_id": device_id})


def _device(row: asyncpg.Record) -> Device:
    return Device(id=row["id"], platform=Platform(row["platform"]),
                  created_at=row["created_at"])


def _push_device(row: asyncpg.Record) -> PushDevice:
    platform = cast(PushPlatform, row["platform"])
    if platform == "webpush":
        return PushDevice(id=row["device_id"], platform=platform, subscription=(
            WebPushSubscription(endpoint=row["token"],
                                keys=WebPushKeys(p256dh=row["p256dh"], auth=row["auth"]))))
    return PushDevice(id=row["device_id"], platform=platform, token=row["token"])
