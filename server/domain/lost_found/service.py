"""Lost & found rules: who may do what, in which transaction, with which events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from msgspec import UNSET

from protocol.lost import (
    AlertResult,
    AlertsResult,
    LostAlert,
    LostNearby,
    LostReport,
    LostSightingCommand,
    LostSightingEvent,
    LostSightings,
    LostUpdate,
    LostWatch,
    SightingResult,
    SightingsResult,
    WatchesResult,
    WatchResult,
)
from server.deps import Deps
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.lost_found import store
from server.domain.lost_found.fanout import WAKE_TOPIC, FanoutRunner, send_alert
from server.domain.lost_found.objects import alert_for, sighting_from, watch_from
from server.domain.notifications.service import notify
from server.domain.uploads.attachments import check_owned_uploads, mark_public
from server.errors import Conflict, Forbidden, NotFound
from server.ids import parse_id
from server.realtime.stream import Transaction

MAX_WATCHES_PER_USER = 5
DAY_S = 86400.0
SIGHTINGS_PER_ALERT_LIMIT = 5  # per user per alert ...
SIGHTINGS_PER_ALERT_WINDOW_S = 600.0  # ... per 10 minutes


async def _visible_alert(conn: asyncpg.Connection, alert_id: str, *, lock: str = ""
                         ) -> asyncpg.Record:
    """Any existing alert is visible (open ones are public; resolved ones were sent to
    watchers); an id that is not one is not_found."""
    parsed = parse_id(alert_id)
    row = await store.select_alert(conn, parsed, lock=lock) if parsed else None
    if row is None:
        raise NotFound("alert_id: no such alert")
    return row


async def _check_photos(conn: asyncpg.Connection, user_id: str, photo_ids: Sequence[str]
                        ) -> list[str]:
    return await check_owned_uploads(conn, user_id, list(photo_ids), "photo_ids")


async def _check_pet(conn: asyncpg.Connection, user_id: str, pet_id: str | None) -> str | None:
    if pet_id is None:
        return None
    parsed = parse_id(pet_id)
    if parsed is None or not await store.select_pet_is_owned(conn, user_id, parsed):
        raise NotFound("pet_id: no such pet")
    return parsed


# --- alerts ------------------------------------------------------------------------

class LostFoundService:
    """Alerts, watch circles, sightings; owns the watcher fan-out runner (start/stop)."""

    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.settings = deps.settings
        self.stream = deps.stream
        self.limiter = deps.limiter
        self.presence = deps.presence
        self.node = deps.node
        self.inline_max = deps.settings.lost_inline_fanout_max
        self.runner = FanoutRunner(deps.stream, deps.presence,
                                   poll_s=deps.settings.lost_fanout_poll_s)

    async def start(self) -> None:
        self.node.on_broadcast(WAKE_TOPIC, lambda _payload: self.runner.wake())
        self.runner.start()

    async def _queued(self) -> None:
        """A fan-out job was committed: wake this node's runner and every other node's."""
        self.runner.wake()
        await self.node.broadcast(WAKE_TOPIC)

    async def _fan_out_alert(self, tx: Transaction, alert: asyncpg.Record) -> bool:
        """Send a new alert to its watchers in ``tx`` if they are few enough; else commit a
        job for the runners. True if a job was queued."""
        watchers = await store.select_watchers_after(
            tx.conn, lat=alert["lat"], lng=alert["lng"], radius_m=alert["radius_m"],
            exclude_user_id=alert["owner_id"], after_user_id=None, limit=self.inline_max + 1)
        if len(watchers) > self.inline_max:
            await store.insert_fanout_job(tx.conn, alert["id"], "alert")
            return True
        await send_alert(tx, self.presence, alert, watchers)
        return False

    async def stop(self) -> None:
        await self.runner.stop()

    async def report_lost(self, user_id: str, cmd: LostReport) -> AlertResult:
        """Commit the alert with its events to up to ``LOST_INLINE_FANOUT_MAX`` watchers,
        or with a fan-out job that the runners work through afterwards."""
        queued = False

        async def work(tx: Transaction) -> AlertResult:
            nonlocal queued
            # Inside the idempotent work: a resend of a recorded report is never refused.
            limit = self.settings.lost_reports_per_day
            await self.limiter.take(f"lost.report:{user_id}", limit, DAY_S,
                                    f"lost.report: at most {limit} per day; try again later")
            pet_id = await _check_pet(tx.conn, user_id, cmd.pet_id)
            photos = await _check_photos(tx.conn, user_id, cmd.photo_ids)
            await mark_public(tx.conn, user_id, photos)  # a lost poster is for everyone
            row = await store.insert_alert(
                tx.conn, owner_id=user_id, pet_id=pet_id, description=cmd.description,
                lat=cmd.location.lat, lng=cmd.location.lng, radius_m=cmd.radius_m,
                photo_ids=photos,
            )
            queued = await self._fan_out_alert(tx, row)
            return AlertResult(alert=alert_for(row, user_id))

        result = await run_idempotent(self.stream, user_id=user_id, scope="lost.report",
                                      key=cmd.idempotency_key, result_type=AlertResult, work=work)
        if queued:
            await self._queued()
        return result

    async def update_alert(self, user_id: str, cmd: LostUpdate) -> AlertResult:
        async with self.stream.transaction() as tx:
            row = await _visible_alert(tx.conn, cmd.alert_id, lock="FOR UPDATE")
            if row["owner_id"] != user_id:
                raise Forbidden("alert_id: only the alert's owner may change it")
            if row["status"] != "open":
                raise Conflict("alert_id: the alert is resolved")
            photos = (None if cmd.photo_ids is UNSET
                      else await _check_photos(tx.conn, user_id, cmd.photo_ids))
            if photos:
                await mark_public(tx.conn, user_id, photos)
            row = await store.update_alert(
                tx.conn, row["id"],
                description=None if cmd.description is UNSET else cmd.description,
                radius_m=None if cmd.radius_m is UNSET else cmd.radius_m,
                photo_ids=photos,
            )
            return AlertResult(alert=alert_for(row, user_id))

    async def resolve_alert(self, user_id: str, alert_id: str) -> AlertResult:
        async with self.stream.transaction() as tx:
            row = await _visible_alert(tx.conn, alert_id, lock="FOR UPDATE")
            if row["owner_id"] != user_id:
                raise Forbidden("alert_id: only the alert's owner may resolve it")
            queued = False
            if row["status"] == "open":
                row = await store.update_alert_resolved(tx.conn, row["id"])
                # The alert's lock waited for any in-flight batch, and no batch sends an
                # alert that is not open: the recipients read now are all there will be.
                recipients = await store.select_recipients_after(
                    tx.conn, row["id"], None, self.inline_max + 1)
                if len(recipients) > self.inline_max:
                    await store.insert_fanout_job(tx.conn, row["id"], "resolved")
                    queued = True
                elif recipients:
                    await tx.append(recipients, LostAlert(seq=0, alert=alert_for(row, None)))
        if queued:
            await self._queued()
        return AlertResult(alert=alert_for(row, user_id))

    async def nearby_alerts(self, user_id: str, cmd: LostNearby) -> AlertsResult:
        async with self.db.acquire() as conn:
            rows = await store.select_open_alerts_near(
                conn, lat=cmd.location.lat, lng=cmd.location.lng, radius_m=cmd.radius_m,
                limit=cmd.limit,
            )
        return AlertsResult(alerts=[alert_for(r, user_id) for r in rows])

    async def add_watch(self, user_id: str, cmd: LostWatch) -> WatchResult:
        async def work(tx: Transaction) -> WatchResult:
            await store.lock_user_watches(tx.conn, user_id)
            if await store.count_watches(tx.conn, user_id) >= MAX_WATCHES_PER_USER:
                raise Conflict(f"at most {MAX_WATCHES_PER_USER} watch areas; remove one first")
            row = await store.insert_watch(tx.conn, user_id=user_id, lat=cmd.location.lat,
                                           lng=cmd.location.lng, radius_m=cmd.radius_m)
            return WatchResult(watch=watch_from(row))

        return await run_idempotent(self.stream, user_id=user_id, scope="lost.watch",
                                    key=cmd.idempotency_key, result_type=WatchResult, work=work)

    async def remove_watch(self, user_id: str, watch_id: str) -> None:
        """Repeating (or an id that is not the user's) is a no-op, which leaks nothing."""
        parsed = parse_id(watch_id)
        if parsed is None:
            return
        async with self.stream.transaction() as tx:
            await store.lock_user_watches(tx.conn, user_id)
            await store.delete_watch(tx.conn, user_id=user_id, watch_id=parsed)

    async def list_watches(self, user_id: str) -> WatchesResult:
        async with self.db.acquire() as conn:
            rows = await store.select_watches(conn, user_id)
        return WatchesResult(watches=[watch_from(r) for r in rows])

    async def report_sighting(self, user_id: str, cmd: LostSightingCommand
                              ) -> SightingResult:
        async def work(tx: Transaction) -> SightingResult:
            alert = await _visible_alert(tx.conn, cmd.alert_id, lock="FOR SHARE")
            if alert["status"] != "open":
                raise Conflict("alert_id: the alert is resolved")
            # Checked inside the idempotent work: a resend of a recorded sighting is never
            # refused, and a refused one rolls its key back so it can be retried later.
            await self.limiter.take(
                f"lost.sighting:{user_id}:{alert['id']}", SIGHTINGS_PER_ALERT_LIMIT,
                SIGHTINGS_PER_ALERT_WINDOW_S, "too many sightings for this alert; try again later")
            photos = await _check_photos(tx.conn, user_id, cmd.photo_ids)
            row = await store.insert_sighting(
                tx.conn, alert_id=alert["id"], reporter_id=user_id, lat=cmd.location.lat,
                lng=cmd.location.lng, note=cmd.note, photo_ids=photos,
            )
            sighting = sighting_from(row)
            await tx.append([alert["owner_id"]], LostSightingEvent(seq=0, sighting=sighting))
            await notify(
                tx, self.presence, [alert["owner_id"]], kind="lost.sighting",
                title="Someone saw your pet", body=(cmd.note or "")[:140],
                data={"alert_id": alert["id"], "sighting_id": sighting.id},
            )
            return SightingResult(sighting=sighting)

        return await run_idempotent(self.stream, user_id=user_id, scope="lost.sighting",
                                    key=cmd.idempotency_key, result_type=SightingResult,
                                    work=work)

    async def list_sightings(self, user_id: str, cmd: LostSightings) -> SightingsResult:
        """The owner sees every sighting of the alert; anyone else only their own."""
        before = decode_cursor(cmd.cursor, (datetime, str)) if cmd.cursor else None
        async with self.db.acquire() as conn:
            alert = await _visible_alert(conn, cmd.alert_id)
            only = None if alert["owner_id"] == user_id else user_id
            rows = await store.select_sightings(conn, alert_id=alert["id"], reporter_id=only,
                                                before=before, limit=cmd.limit + 1)
        more = len(rows) > cmd.limit
        rows = rows[: cmd.limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return SightingsResult(sightings=[sighting_from(r) for r in rows], next_cursor=next_cursor)



