"""Value types shared by every message: ids, seqs, times, locations, bounded strings.

Each is an ``Annotated`` type whose ``msgspec.Meta`` is the validation applied
when bytes are decoded (and the bounds published in the generated schemas).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import Meta

Id = Annotated[str, Meta(min_length=1, max_length=64, description="An opaque identifier.")]
"""An opaque identifier (1..64 characters). Clients must not parse it."""

IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="Same key from the same user returns the original result.",
    ),
]
"""Client-chosen key that makes a creating command safe to resend (1..64 characters)."""

Seq = Annotated[int, Meta(ge=0, description="Position in the user's durable event stream.")]
"""A position in the user's durable event stream: 1, 2, 3, … per user; 0 means none yet."""

Timestamp = Annotated[
    datetime, Meta(tz=True, description="RFC 3339 time; the server sends UTC with `Z`.")
]
"""An RFC 3339 time with an offset. The server always sends UTC, spelt with ``Z``
(e.g. ``2026-11-26T10:00:00Z``), in both sub-protocols. Aware datetimes only: a
naive one is rejected on decode; the server must build them with ``utc_now()``
or ``tzinfo=UTC``."""

Latitude = Annotated[float, Meta(ge=-90, le=90, description="WGS84 degrees.")]
Longitude = Annotated[float, Meta(ge=-180, le=180, description="WGS84 degrees.")]


class Location(msgspec.Struct, kw_only=True):
    """A WGS84 point in degrees."""

    lat: Latitude
    lng: Longitude


AlertRadiusM = Annotated[int, Meta(ge=100, le=50_000, description="Metres.")]
"""Radius of a lost-pet alert or a watch circle, in metres (100..50000)."""

SearchRadiusM = Annotated[int, Meta(ge=1, le=50_000, description="Metres.")]
"""Radius of a nearby search, in metres (1..50000)."""

Cursor = Annotated[str, Meta(min_length=1, max_length=512, description="Opaque page cursor.")]
"""An opaque paging cursor returned as ``next_cursor``; send it back unchanged."""

Token = Annotated[str, Meta(min_length=1, max_length=4096)]
"""A credential (access token, refresh token, push token): 1..4096 characters."""

FieldPath = Annotated[
    str,
    Meta(min_length=1, max_length=256,
         description="A field's path in the request: names joined by `.`, list indexes in "
                     "`[]` (`location.lat`, `photo_ids[1]`)."),
]
"""The field an ``error`` is about, spelt as the start of its message."""

# Bounded texts, named for what they hold.
DisplayName = Annotated[str, Meta(min_length=1, max_length=60)]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Meta(min_length=8, max_length=1024)]
"""A new password. The upper bound keeps hashing cost bounded."""
LoginPassword = Annotated[str, Meta(min_length=1, max_length=1024)]
PetName = Annotated[str, Meta(min_length=1, max_length=60)]
Breed = Annotated[str, Meta(min_length=1, max_length=60)]
Bio = Annotated[str, Meta(max_length=1000)]
MessageBody = Annotated[str, Meta(min_length=1, max_length=4000)]
"""A chat message body. The server trims whitespace and checks 1..4000 again after."""
Description = Annotated[str, Meta(min_length=1, max_length=2000)]
Note = Annotated[str, Meta(max_length=1000)]
ClientName = Annotated[str, Meta(max_length=128)]
ContentType = Annotated[str, Meta(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$")]

PhotoIds = Annotated[list[Id], Meta(max_length=10)]
"""Up to 10 upload ids."""

AgeYears = Annotated[int, Meta(ge=0, le=40)]
DistanceKm = Annotated[int, Meta(ge=1, le=500)]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime, as every ``Timestamp`` must be."""
    return datetime.now(UTC)


PageLimit50 = Annotated[int, Meta(ge=1, le=50)]
PageLimit100 = Annotated[int, Meta(ge=1, le=100)]
