"""Core objects of PROTOCOL §8: the things commands return and events carry.

Fields without a default are always present; fields marked ``?`` in the
contract default to ``None`` and are left out when null. More fields may be
added later; clients ignore unknown ones.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from protocol.types import (
    AgeYears,
    AlertRadiusM,
    Bio,
    Breed,
    Description,
    DisplayName,
    DistanceKm,
    Email,
    Id,
    Location,
    Note,
    PetName,
    PhotoIds,
    Timestamp,
)


class _Object(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of core objects: untagged, optional null fields omitted."""


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class Species(StrEnum):
    DOG = "dog"
    CAT = "cat"
    RABBIT = "rabbit"
    BIRD = "bird"
    OTHER = "other"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class AlertStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class UploadStatus(StrEnum):
    """Moderation state of an upload; a new upload is ``pending``."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class UploadPurpose(StrEnum):
    PET_PHOTO = "pet_photo"
    CHAT_ATTACHMENT = "chat_attachment"
    LOST_POSTER = "lost_poster"
    ADOPTION_PHOTO = "adoption_photo"
    AVATAR = "avatar"


class Platform(StrEnum):
    """Push platform of a registered device."""

    FCM = "fcm"
    APNS = "apns"
    WEBPUSH = "webpush"


class User(_Object, kw_only=True):
    """A user as others see them. ``email`` and ``email_verified`` are present only for
    the user themself (``auth/me`` and auth responses). A deleted account's messages and
    sightings stay, from a user whose ``display_name`` is "Deleted user"."""

    id: Id
    display_name: DisplayName
    role: Role
    email: Email | None = None
    email_verified: bool | None = None


class Pet(_Object, kw_only=True):
    """A pet profile, owned by one user."""

    id: Id
    owner_id: Id
    name: PetName
    species: Species
    breed: Breed | None = None
    sex: Sex | None = None
    birth_date: date | None = None
    bio: Bio | None = None
    photo_ids: PhotoIds
    location: Location | None = None


class Match(_Object, kw_only=True):
    """Two pets that liked each other; the match opens a conversation between the owners."""

    id: Id
    pet_ids: Annotated[list[Id], Meta(min_length=2, max_length=2)]
    user_ids: Annotated[list[Id], Meta(min_length=2, max_length=2)]
    conversation_id: Id
    created_at: Timestamp


class ChatMessage(_Object, kw_only=True):
    """A chat message (the contract's ``message`` object). A deleted message keeps its
    id and ``deleted_at``; its body is then empty and its attachments gone."""

    id: Id
    conversation_id: Id
    sender_id: Id
    client_msg_id: Id
    body: Annotated[str, Meta(max_length=4000)]
    """1..4000 characters, trimmed; empty only when deleted."""
    attachment_ids: PhotoIds
    created_at: Timestamp
    edited_at: Timestamp | None = None
    deleted_at: Timestamp | None = None


class Conversation(_Object, kw_only=True):
    """A conversation as the requesting user sees it (``unread_count`` is theirs)."""

    id: Id
    member_ids: list[Id]
    match_id: Id | None = None
    last_message: ChatMessage | None = None
    unread_count: Annotated[int, Meta(ge=0)]
    last_activity_at: Timestamp
    closed: bool
    """True once the match was undone: history stays readable, sending is ``conflict``."""
    listing_id: Id | None = None
    """Set when the conversation was opened by accepting an adoption application."""


class Notification(_Object, kw_only=True):
    """An in-app notification. ``kind`` is an open set (clients ignore kinds they
    do not know); ``data`` holds kind-specific ids."""

    id: Id
    kind: Annotated[str, Meta(min_length=1, max_length=64)]
    title: str
    body: str
    data: dict[str, Any]
    created_at: Timestamp
    read_at: Timestamp | None = None


class Alert(_Object, kw_only=True):
    """A lost-pet alert: a circle around where the pet was lost."""

    id: Id
    owner_id: Id
    pet_id: Id | None = None
    description: Description
    location: Location
    radius_m: AlertRadiusM
    status: AlertStatus
    photo_ids: PhotoIds
    created_at: Timestamp
    resolved_at: Timestamp | None = None


class Sighting(_Object, kw_only=True):
    """A report that someone saw the pet of an alert."""

    id: Id
    alert_id: Id
    reporter_id: Id
    location: Location
    note: Note | None = None
    photo_ids: PhotoIds
    created_at: Timestamp


class Watch(_Object, kw_only=True):
    """A circle a user watches for new lost-pet alerts."""

    id: Id
    location: Location
    radius_m: AlertRadiusM


class Upload(_Object, kw_only=True):
    """An uploaded file. ``url`` is a short-lived download URL, present when the
    requester may download it."""

    id: Id
    owner_id: Id
    purpose: UploadPurpose
    content_type: str
    size: Annotated[int, Meta(ge=1)]
    status: UploadStatus
    url: str | None = None
    created_at: Timestamp


class Preferences(_Object, kw_only=True):
    """Discovery preferences of a user. An empty ``species`` list means any species."""

    species: list[Species]
    min_age_years: AgeYears | None = None
    max_age_years: AgeYears | None = None
    max_distance_km: DistanceKm


class Device(_Object, kw_only=True):
    """A registered push device (its token or subscription is never sent back)."""

    id: Id
    platform: Platform
    created_at: Timestamp
    """When it was first registered."""


class PresenceState(_Object, kw_only=True):
    """Whether a user has at least one live connection."""

    user_id: Id
    online: bool


class Candidate(_Object, kw_only=True):
    """A pet offered by discovery, with its distance from the asking pet."""

    pet: Pet
    distance_m: Annotated[float, Meta(ge=0)]


# --- live streaming (PROTOCOL §10.5) ------------------------------------------------------

class StreamStatus(StrEnum):
    LIVE = "live"
    ENDED = "ended"


class MediaKind(StrEnum):
    """How a stream's video travels (the server never carries it)."""

    P2P = "p2p"
    """WebRTC from the host's client to each viewer, signalled with ``live.signal``."""
    LIVEKIT = "livekit"
    """A LiveKit room; ``publish``/``view`` carry its URL and an access token."""


class MediaRole(StrEnum):
    HOST = "host"
    VIEWER = "viewer"


class ReactionKind(StrEnum):
    HEART = "heart"
    LAUGH = "laugh"
    WOW = "wow"
    PAW = "paw"


class LiveMedia(_Object, kw_only=True):
    """A stream's media path as everyone may see it. ``p2p``: ``max_viewers``;
    ``livekit``: ``url`` and ``room`` (``live-<stream id>``)."""

    kind: MediaKind
    max_viewers: Annotated[int, Meta(ge=1)] | None = None
    url: str | None = None
    room: str | None = None


class MediaAccess(_Object, kw_only=True):
    """What one client needs to reach the video (``live.start``'s ``publish``,
    ``live.join``'s ``view``).

    ``p2p``: ``host_id`` (the peer every viewer connects with), ``max_viewers`` and
    ``ice_servers`` (STUN/TURN URLs, may be empty); offers, answers and ICE candidates go
    through ``live.signal``. The host makes one peer connection per viewer.
    ``livekit``: ``url``, ``room``, ``token`` (a LiveKit access token for ``identity`` =
    the user's id; the host's may publish, a viewer's only subscribes) and
    ``expires_at``."""

    kind: MediaKind
    role: MediaRole
    host_id: Id
    max_viewers: Annotated[int, Meta(ge=1)] | None = None
    ice_servers: list[str] = []
    url: str | None = None
    room: str | None = None
    identity: Id | None = None
    token: str | None = None
    expires_at: Timestamp | None = None


class LiveStream(_Object, kw_only=True):
    """A live stream (the contract's ``stream``). ``viewer_count`` counts distinct users
    across nodes, the host not included."""

    id: Id
    host: User
    pet_id: Id | None = None
    title: Annotated[str, Meta(min_length=1, max_length=120)]
    status: StreamStatus
    viewer_count: Annotated[int, Meta(ge=0)]
    started_at: Timestamp
    ended_at: Timestamp | None = None
    media: LiveMedia


class LiveChatMessage(_Object, kw_only=True):
    """One live chat line (the contract's ``live_chat``); kept in Redis, not PostgreSQL."""

    id: Id
    stream_id: Id
    sender: User
    body: Annotated[str, Meta(min_length=1, max_length=500)]
    created_at: Timestamp
