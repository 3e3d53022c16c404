"""Lost & found: alerts, sightings and watch circles."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from protocol.base import Command, DurableEvent, Empty, Result
from protocol.objects import Alert, Sighting, Watch
from protocol.types import (
    AlertRadiusM,
    Cursor,
    Description,
    Id,
    IdempotencyKey,
    Location,
    Note,
    PageLimit50,
    PageLimit100,
    PhotoIds,
    SearchRadiusM,
)


class AlertResult(Result, kw_only=True):
    alert: Alert


class AlertsResult(Result, kw_only=True):
    alerts: list[Alert]
    """Nearest first."""


class SightingResult(Result, kw_only=True):
    sighting: Sighting


class SightingsResult(Result, kw_only=True):
    sightings: list[Sighting]
    """Newest first."""
    next_cursor: Cursor | None = None


class WatchResult(Result, kw_only=True):
    watch: Watch


class WatchesResult(Result, kw_only=True):
    watches: list[Watch]


class LostReport(Command, tag="lost.report", kw_only=True):
    """Report a lost pet. Every other user whose watch circle intersects the alert's
    circle (centre distance ≤ sum of radii) gets ``lost.alert``."""

    pet_id: Id | None = None
    """One of the user's pets, if the lost pet has a profile."""
    description: Description
    location: Location
    radius_m: AlertRadiusM
    photo_ids: PhotoIds = []
    idempotency_key: IdempotencyKey | None = None
    result_type = AlertResult


class LostUpdate(Command, tag="lost.update", kw_only=True):
    """Change an open alert (owner only); absent fields are unchanged. No new
    ``lost.alert`` is sent."""

    alert_id: Id
    description: Description | UnsetType = UNSET
    radius_m: AlertRadiusM | UnsetType = UNSET
    photo_ids: PhotoIds | UnsetType = UNSET
    result_type = AlertResult


class LostResolve(Command, tag="lost.resolve", kw_only=True):
    """Mark an alert resolved (owner only). Repeating is a no-op."""

    alert_id: Id
    result_type = AlertResult


class LostNearby(Command, tag="lost.nearby", kw_only=True):
    """Open alerts whose circle intersects the given circle, nearest first."""

    location: Location
    radius_m: SearchRadiusM
    limit: PageLimit100 = 50
    result_type = AlertsResult


class LostSightingCommand(Command, tag="lost.sighting", kw_only=True):
    """Report a sighting for an open alert; its owner gets ``lost.sighting``."""

    alert_id: Id
    location: Location
    note: Note | None = None
    photo_ids: PhotoIds = []
    idempotency_key: IdempotencyKey | None = None
    result_type = SightingResult


class LostSightings(Command, tag="lost.sightings", kw_only=True):
    """Sightings of an alert, newest first (the alert's owner sees all; a reporter
    sees their own)."""

    alert_id: Id
    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = SightingsResult


class LostWatch(Command, tag="lost.watch", kw_only=True):
    """Watch a circle for new lost-pet alerts."""

    location: Location
    radius_m: AlertRadiusM
    idempotency_key: IdempotencyKey | None = None
    result_type = WatchResult


class LostUnwatch(Command, tag="lost.unwatch", kw_only=True):
    """Stop watching a circle. Repeating is a no-op."""

    watch_id: Id
    result_type = Empty


class LostWatches(Command, tag="lost.watches", kw_only=True):
    """The user's watch circles."""

    result_type = WatchesResult


class LostAlert(DurableEvent, tag="lost.alert", kw_only=True):
    """To watchers whose circle intersects the alert's (not the reporter): a new alert."""

    alert: Alert


class LostSightingEvent(DurableEvent, tag="lost.sighting", kw_only=True):
    """To the alert's owner: a new sighting."""

    sighting: Sighting
