"""Adoption (PROTOCOL §10.1): listings of pets for adoption and applications for them."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from msgspec import UNSET, Meta, UnsetType

from protocol.base import Command, DurableEvent, Result
from protocol.objects import Pet, Species, _Object
from protocol.types import (
    Cursor,
    DistanceKm,
    Id,
    IdempotencyKey,
    Location,
    PageLimit50,
    PhotoIds,
    Timestamp,
)

ListingTitle = Annotated[str, Meta(min_length=1, max_length=120)]
ListingDescription = Annotated[str, Meta(min_length=1, max_length=5000)]
ApplicationMessage = Annotated[str, Meta(min_length=1, max_length=2000)]
DecisionNote = Annotated[str, Meta(max_length=1000)]
FeeCents = Annotated[int, Meta(ge=0, le=1_000_000, description="Minor units of `currency`.")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR.")]


class ListingStatus(StrEnum):
    """``available → pending → adopted``; ``withdrawn`` from either open state."""

    AVAILABLE = "available"
    PENDING = "pending"
    ADOPTED = "adopted"
    WITHDRAWN = "withdrawn"


class ListingStatusChange(StrEnum):
    """The statuses a lister may set (``pending`` comes from accepting an application)."""

    AVAILABLE = "available"
    WITHDRAWN = "withdrawn"
    ADOPTED = "adopted"


class ApplicationStatus(StrEnum):
    """``submitted → accepted | rejected | withdrawn``; ``accepted → withdrawn``."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ApplicationDecision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class Listing(_Object, kw_only=True):
    """A pet offered for adoption by its owner (the lister)."""

    id: Id
    lister_id: Id
    pet: Pet
    title: ListingTitle
    description: ListingDescription
    location: Location
    """Exact for the lister; rounded to 0.01° for everyone else."""
    fee_cents: FeeCents | None = None
    currency: Currency | None = None
    status: ListingStatus
    photo_ids: PhotoIds
    created_at: Timestamp
    updated_at: Timestamp
    distance_m: Annotated[float, Meta(ge=0)] | None = None
    """In ``adoption.listings`` with a ``location``: metres from it (to the rounded point)."""


class Application(_Object, kw_only=True):
    """An application to adopt a listed pet; seen by its applicant and the lister."""

    id: Id
    listing_id: Id
    applicant_id: Id
    message: ApplicationMessage
    status: ApplicationStatus
    conversation_id: Id | None = None
    """Set when accepted: the lister's and applicant's conversation (``chat.*``)."""
    note: DecisionNote | None = None
    """The lister's note with the decision, if any."""
    created_at: Timestamp
    decided_at: Timestamp | None = None


class ListingResult(Result, kw_only=True):
    listing: Listing


class ListingsResult(Result, kw_only=True):
    listings: list[Listing]
    """Nearest first with a location, newest first without."""
    next_cursor: Cursor | None = None


class ApplicationResult(Result, kw_only=True):
    application: Application


class ApplicationsResult(Result, kw_only=True):
    applications: list[Application]
    """Newest first."""
    next_cursor: Cursor | None = None


def _check_fee(fee_cents: object, currency: object) -> None:
    if (fee_cents is None) != (currency is None):
        raise ValueError("currency: give fee_cents and currency together")


class AdoptionListPet(Command, tag="adoption.list_pet", kw_only=True):
    """List one of the caller's pets for adoption. One open (``available`` or
    ``pending``) listing per pet, else ``conflict``."""

    pet_id: Id
    title: ListingTitle
    description: ListingDescription
    location: Location
    fee_cents: FeeCents | None = None
    currency: Currency | None = None
    """Required with ``fee_cents`` (and only with it)."""
    photo_ids: PhotoIds = []
    """The caller's own uploads; they become public (visible to anyone once approved)."""
    idempotency_key: IdempotencyKey | None = None
    result_type = ListingResult

    def __post_init__(self) -> None:
        _check_fee(self.fee_cents, self.currency)


class AdoptionUpdateListing(Command, tag="adoption.update_listing", kw_only=True):
    """Change a listing (the lister only); absent fields are unchanged. ``fee_cents:
    null`` removes the fee (and its currency). Setting ``adopted`` needs an accepted
    application and rejects every application still ``submitted``."""

    listing_id: Id
    title: ListingTitle | UnsetType = UNSET
    description: ListingDescription | UnsetType = UNSET
    fee_cents: FeeCents | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    photo_ids: PhotoIds | UnsetType = UNSET
    status: ListingStatusChange | UnsetType = UNSET
    result_type = ListingResult


class AdoptionListings(Command, tag="adoption.listings", kw_only=True):
    """Available listings: within ``radius_km`` (default 50) of ``location`` nearest
    first, or everywhere newest first without a location; ``species`` filters."""

    location: Location | None = None
    radius_km: DistanceKm | None = None
    """Needs ``location``; 50 when absent."""
    species: list[Species] = []
    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = ListingsResult

    def __post_init__(self) -> None:
        if self.radius_km is not None and self.location is None:
            raise ValueError("radius_km: needs location")


class AdoptionListing(Command, tag="adoption.listing", kw_only=True):
    """One listing: any available one; any status for its lister and its applicants."""

    listing_id: Id
    result_type = ListingResult


class AdoptionApply(Command, tag="adoption.apply", kw_only=True):
    """Apply for an available listing (not one's own). One live (``submitted`` or
    ``accepted``) application per applicant and listing."""

    listing_id: Id
    message: ApplicationMessage
    idempotency_key: IdempotencyKey | None = None
    result_type = ApplicationResult


class AdoptionApplications(Command, tag="adoption.applications", kw_only=True):
    """A listing's applications (its lister only), or without ``listing_id`` the
    caller's own; newest first."""

    listing_id: Id | None = None
    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = ApplicationsResult


class AdoptionWithdraw(Command, tag="adoption.withdraw", kw_only=True):
    """Withdraw one's application while ``submitted`` or ``accepted``; withdrawing an
    accepted one makes the listing ``available`` again."""

    application_id: Id
    result_type = ApplicationResult


class AdoptionDecide(Command, tag="adoption.decide", kw_only=True):
    """Accept or reject a ``submitted`` application (the lister only). Accepting makes
    the listing ``pending`` and opens a conversation between lister and applicant."""

    application_id: Id
    decision: ApplicationDecision
    note: DecisionNote | None = None
    result_type = ApplicationResult


class AdoptionApplication(DurableEvent, tag="adoption.application", kw_only=True):
    """To the lister: an application was submitted (or later withdrawn: the same
    application with its new status; clients replace the one they have)."""

    application: Application


class AdoptionDecision(DurableEvent, tag="adoption.decision", kw_only=True):
    """To the applicant: their application was accepted or rejected."""

    application: Application
