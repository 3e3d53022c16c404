"""Rows → wire objects, with the privacy rule in one place.

An alert's exact centre is shown to its owner only; everyone else gets the public
centre, rounded in SQL (``lf_public_deg``) to 3 decimals of a degree (≤ ~79 m off).
Sighting coordinates are exact: they reach only the alert's owner and the sighting's
own reporter.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from protocol.objects import Alert, AlertStatus, Sighting, Watch
from protocol.types import Location


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def alert_for(row: asyncpg.Record, viewer_id: str | None) -> Alert:
    """The alert as ``viewer_id`` may see it (None: a viewer who is not the owner)."""
    exact = viewer_id is not None and viewer_id == row["owner_id"]
    lat, lng = (row["lat"], row["lng"]) if exact else (row["pub_lat"], row["pub_lng"])
    return Alert(
        id=row["id"], owner_id=row["owner_id"], pet_id=row["pet_id"],
        description=row["description"], location=Location(lat=lat, lng=lng),
        radius_m=row["radius_m"], status=AlertStatus(row["status"]),
        photo_ids=list(row["photo_ids"]), created_at=_utc(row["created_at"]),
        resolved_at=_utc(row["resolved_at"]) if row["resolved_at"] else None,
    )


def sighting_from(row: asyncpg.Record) -> Sighting:
    return Sighting(
        id=row["id"], alert_id=row["alert_id"], reporter_id=row["reporter_id"],
        location=Location(lat=row["lat"], lng=row["lng"]), note=row["note"],
        photo_ids=list(row["photo_ids"]), created_at=_utc(row["created_at"]),
    )


def watch_from(row: asyncpg.Record) -> Watch:
    return Watch(id=row["id"], location=Location(lat=row["lat"], lng=row["lng"]),
                 radius_m=row["radius_m"])
