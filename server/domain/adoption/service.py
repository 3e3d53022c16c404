"""Adoption rules: listings, applications, decisions — who may do what, in which state.

Visibility: a listing is visible to its lister always; to anyone else while it is
``available``, and in any status to users who applied to it — unless the lister is
banned, moderation removed it, or a block separates the two. An application is visible
to its applicant and to the lister (not across a block). Invisible ids are
``not_found``; visible ones that the caller may not change are ``forbidden``.

Concurrency: every change of a listing's status, and every decision on one of its
applications, first locks the listing row (``FOR UPDATE``; ``adoption.apply`` takes it
``FOR SHARE``). So of two accepts of the same listing at once, on any nodes, the second
waits for the first, then finds the listing ``pending`` and answers ``conflict``; the
partial unique index on accepted applications backs this up.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import asyncpg
from msgspec import UNSET

from protocol.adoption import (
    AdoptionApplication,
    AdoptionApply,
    AdoptionDecide,
    AdoptionDecision,
    AdoptionListings,
    AdoptionListPet,
    AdoptionUpdateListing,
    Application,
    ApplicationDecision,
    ApplicationResult,
    ApplicationsResult,
    ApplicationStatus,
    Listing,
    ListingResult,
    ListingsResult,
    ListingStatus,
    ListingStatusChange,
)
from protocol.objects import Pet, Sex, Species
from protocol.types import Location
from server.deps import Deps
from server.domain.adoption import store
from server.domain.chat import store as chat_store
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.idempotency import run_idempotent
from server.domain.notifications.service import notify
from server.domain.pets import store as pet_store
from server.domain.safety.store import blocked_between
from server.domain.uploads.attachments import check_owned_uploads, mark_public
from server.errors import BadRequest, Conflict, Forbidden, NotFound
from server.ids import require_id
from server.realtime.presence import Presence
from server.realtime.stream import Transaction

log = logging.getLogger(__name__)

DEFAULT_RADIUS_KM = 50
PREVIEW_CHARS = 140
DAY_S = 86_400.0
OPEN = (ListingStatus.AVAILABLE.value, ListingStatus.PENDING.value)
LIVE = (ApplicationStatus.SUBMITTED.value, ApplicationStatus.ACCEPTED.value)


def listing_for(row: asyncpg.Record, viewer: str) -> Listing:
    """The listing as ``viewer`` sees it: the exact point for its lister only, and the
    pet's own location exact for its owner only (0.01° for everyone else, as discovery)."""
    exact = row["lister_id"] == viewer
    lat, lng = (row["lat"], row["lng"]) if exact else (row["pub_lat"], row["pub_lng"])
    pet_exact = row["pet_owner_id"] == viewer
    pet_location = (Location(lat=row["pet_lat"], lng=row["pet_lng"]) if pet_exact
                    else Location(lat=row["pet_pub_lat"], lng=row["pet_pub_lng"])
                    ) if row["pet_lat"] is not None else None
    pet = Pet(id=row["pet_id"], owner_id=row["pet_owner_id"], name=row["pet_name"],
              species=Species(row["pet_species"]), breed=row["pet_breed"],
              sex=Sex(row["pet_sex"]) if row["pet_sex"] else None,
              birth_date=row["pet_birth_date"], bio=row["pet_bio"],
              photo_ids=list(row["pet_photo_ids"]), location=pet_location)
    distance = row.get("distance_m")
    return Listing(
        id=row["id"], lister_id=row["lister_id"], pet=pet, title=row["title"],
        description=row["description"], location=Location(lat=lat, lng=lng),
        fee_cents=row["fee_cents"], currency=row["currency"],
        status=ListingStatus(row["status"]), photo_ids=list(row["photo_ids"]),
        created_at=row["created_at"], updated_at=row["updated_at"],
        distance_m=float(distance) if distance is not None else None,
    )


def application_from(row: asyncpg.Record) -> Application:
    return Application(
        id=row["id"], listing_id=row["listing_id"], applicant_id=row["applicant_id"],
        message=row["message"], status=ApplicationStatus(row["status"]),
        conversation_id=row["conversation_id"], note=row["note"],
        created_at=row["created_at"], decided_at=row["decided_at"],
    )


def _text(value: str, field: str) -> str:
    text = value.strip()
    if not text:
        raise BadRequest(f"{field}: must not be blank")
    return text


def listing_visible(row: asyncpg.Record, viewer: str) -> bool:
    """Whether ``viewer`` may see the listing (``store.select_listing``'s row)."""
    if row["lister_id"] == viewer:
        return True
    if row["lister_banned"] or row["removed"] or row["blocked"]:
        return False
    return bool(row["status"] == ListingStatus.AVAILABLE.value or row["applied"])


async def tell_applicants(tx: Transaction, presence: Presence, rows: list[asyncpg.Record],
                          title: str) -> None:
    """``adoption.decision`` and a notification to each applicant whose application was
    just decided (``rows``: ``store.APPLICATION_COLUMNS``); also used by moderation when
    it removes a listing."""
    for row in rows:
        application = application_from(row)
        await tx.append([application.applicant_id],
                        AdoptionDecision(seq=0, application=application))
        accepted = application.status is ApplicationStatus.ACCEPTED
        data: dict[str, Any] = {"listing_id": application.listing_id,
                                "application_id": application.id,
                                "status": application.status.value}
        if accepted and application.conversation_id:
            data["conversation_id"] = application.conversation_id
        await notify(tx, presence, [application.applicant_id],
                     kind="adoption.decision",
                     title=("Your adoption application was accepted" if accepted
                            else "Your adoption application was not accepted"),
                     body=title[:PREVIEW_CHARS], data=data)


class AdoptionService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.presence = deps.presence
        self.limiter = deps.limiter
        self.settings = deps.settings

    async def _limit(self, action: str, user_id: str, per_day: int) -> None:
        await self.limiter.take(f"{action}:{user_id}", per_day, DAY_S,
                                f"at most {per_day} {action} per day; try again later")

    async def _listing(self, conn: asyncpg.Connection, listing_id: str, viewer: str, *,
                       for_update: bool = False) -> asyncpg.Record:
        parsed = require_id(listing_id, "listing_id", "no such listing")
        row = await store.select_listing(conn, parsed, viewer, for_update=for_update)
        if row is None or not listing_visible(row, viewer):
            raise NotFound("listing_id: no such listing")
        return row

    async def _reload(self, conn: asyncpg.Connection, listing_id: str, viewer: str
                      ) -> Listing:
        row = await store.select_listing(conn, listing_id, viewer)
        assert row is not None
        return listing_for(row, viewer)

    async def _tell_applicants(self, tx: Transaction, rows: list[asyncpg.Record],
                               title: str) -> None:
        await tell_applicants(tx, self.presence, rows, title)

    # --- listings -----------------------------------------------------------------------

    async def list_pet(self, user_id: str, cmd: AdoptionListPet) -> ListingResult:
        title, description = _text(cmd.title, "title"), _text(cmd.description, "description")
        pet_id = require_id(cmd.pet_id, "pet_id", "no such pet")

        async def work(tx: Transaction) -> ListingResult:
            pet = await pet_store.select_pet_for_update(tx.conn, pet_id)  # one at a time
            if pet is None or (pet["owner_id"] != user_id and (
                    pet["owner_banned"] or await blocked_between(tx.conn, user_id,
                                                                 pet["owner_id"]))):
                raise NotFound("pet_id: no such pet")
            if pet["owner_id"] != user_id:
                raise Forbidden("pet_id: only the pet's owner can list it for adoption")
            photos = await check_owned_uploads(tx.conn, user_id, cmd.photo_ids)
            if await store.select_open_listing_of_pet(tx.conn, pet_id):
                raise Conflict("pet_id: the pet already has an open listing")
            await self._limit("adoption.list_pet", user_id,
                              self.settings.adoption_listings_per_day)
            await mark_public(tx.conn, user_id, photos)  # a listing is for everyone
            try:
                listing_id = await store.insert_listing(
                    tx.conn, lister_id=user_id, pet_id=pet_id, title=title,
                    description=description, lat=cmd.location.lat, lng=cmd.location.lng,
                    fee_cents=cmd.fee_cents, currency=cmd.currency, photo_ids=photos)
            except asyncpg.UniqueViolationError:
                raise Conflict("pet_id: the pet already has an open listing") from None
            return ListingResult(listing=await self._reload(tx.conn, listing_id, user_id))

        return await run_idempotent(self.stream, user_id=user_id, scope="adoption.list_pet",
                                    key=cmd.idempotency_key, result_type=ListingResult,
                                    work=work)

    async def update_listing(self, user_id: str, cmd: AdoptionUpdateListing) -> ListingResult:
        async with self.stream.transaction() as tx:
            row = await self._listing(tx.conn, cmd.listing_id, user_id, for_update=True)
            if row["lister_id"] != user_id:
                raise Forbidden("listing_id: only the lister can change a listing")
            status = ListingStatus(row["status"])
            if status in (ListingStatus.ADOPTED, ListingStatus.WITHDRAWN):
                raise Conflict(f"listing_id: the listing is {status.value}")
            changes: dict[str, Any] = {}
            if cmd.title is not UNSET:
                changes["title"] = _text(cmd.title, "title")
            if cmd.description is not UNSET:
                changes["description"] = _text(cmd.description, "description")
            if cmd.fee_cents is not UNSET or cmd.currency is not UNSET:
                fee = row["fee_cents"] if cmd.fee_cents is UNSET else cmd.fee_cents
                currency = row["currency"] if cmd.currency is UNSET else cmd.currency
                if cmd.fee_cents is None and cmd.currency is UNSET:
                    currency = None  # removing the fee removes its currency
                if (fee is None) != (currency is None):
                    raise BadRequest("currency: give fee_cents and currency together")
                changes["fee_cents"], changes["currency"] = fee, currency
            if cmd.photo_ids is not UNSET:
                changes["photo_ids"] = await check_owned_uploads(tx.conn, user_id,
                                                                 cmd.photo_ids)
                await mark_public(tx.conn, user_id, changes["photo_ids"])
            rejected: list[asyncpg.Record] = []
            if cmd.status is not UNSET:
                new = cmd.status
                if new is ListingStatusChange.ADOPTED:
                    if status is not ListingStatus.PENDING:
                        raise Conflict("status: adopted needs an accepted application")
                    rejected = await store.update_applications_rejected(
                        tx.conn, row["id"], [ApplicationStatus.SUBMITTED.value])
                    changes["status"] = ListingStatus.ADOPTED.value
                elif new is ListingStatusChange.WITHDRAWN:
                    rejected = await store.update_applications_rejected(tx.conn, row["id"],
                                                                        list(LIVE))
                    changes["status"] = ListingStatus.WITHDRAWN.value
                elif status is ListingStatus.PENDING:  # reopened: the accepted one is off
                    rejected = await store.update_applications_rejected(
                        tx.conn, row["id"], [ApplicationStatus.ACCEPTED.value])
                    changes["status"] = ListingStatus.AVAILABLE.value
            if changes:
                await store.update_listing(tx.conn, row["id"], changes)
            await self._tell_applicants(tx, rejected, changes.get("title", row["title"]))
            if "status" in changes:
                log.info("listing status changed",
                         extra={"listing_id": row["id"], "from": status.value,
                                "to": changes["status"], "rejected": len(rejected)})
            return ListingResult(listing=await self._reload(tx.conn, row["id"], user_id))

    async def listings(self, user_id: str, cmd: AdoptionListings) -> ListingsResult:
        species = [s.value for s in dict.fromkeys(cmd.species)]
        if cmd.location is not None:
            radius_m = (cmd.radius_km or DEFAULT_RADIUS_KM) * 1000.0
            geo_after = (decode_cursor(cmd.cursor, (float, str)) if cmd.cursor else None)
            sql = store.geo_page_sql(geo_after is not None)
            args: list[Any] = [user_id, cmd.limit + 1, species, cmd.location.lat,
                               cmd.location.lng, radius_m, *(geo_after or ())]
        else:
            time_after = (decode_cursor(cmd.cursor, (datetime, str)) if cmd.cursor else None)
            sql = store.recent_page_sql(time_after is not None)
            args = [user_id, cmd.limit + 1, species, *(time_after or ())]
        async with self.db.acquire() as conn:
            rows = await store.select_listings(conn, sql, args)
        more = len(rows) > cmd.limit
        rows = rows[: cmd.limit]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = (encode_cursor(float(last["distance_m"]), last["id"])
                           if cmd.location is not None
                           else encode_cursor(last["created_at"], last["id"]))
        return ListingsResult(listings=[listing_for(r, user_id) for r in rows],
                              next_cursor=next_cursor)

    async def listing(self, user_id: str, listing_id: str) -> ListingResult:
        async with self.db.acquire() as conn:
            return ListingResult(listing=listing_for(
                await self._listing(conn, listing_id, user_id), user_id))

    # --- applications -------------------------------------------------------------------

    async def apply(self, user_id: str, cmd: AdoptionApply) -> ApplicationResult:
        message = _text(cmd.message, "message")

        async def work(tx: Transaction) -> ApplicationResult:
            listing_id = require_id(cmd.listing_id, "listing_id", "no such listing")
            # FOR SHARE: an accept (FOR UPDATE) and this apply see each other's outcome.
            await tx.conn.execute(
                "SELECT 1 FROM adoption_listings WHERE id = $1 FOR SHARE", listing_id)
            row = await self._listing(tx.conn, listing_id, user_id)
            if row["lister_id"] == user_id:
                raise Forbidden("listing_id: you cannot apply to your own listing")
            if row["status"] != ListingStatus.AVAILABLE.value:
                raise Conflict(f"listing_id: the listing is {row['status']}")
            await self._limit("adoption.apply", user_id,
                              self.settings.adoption_applications_per_day)
            inserted = await store.insert_application(tx.conn, listing_id=row["id"],
                                                      applicant_id=user_id, message=message)
            if inserted is None:
                raise Conflict("listing_id: you already have an application for this listing")
            application = application_from(inserted)
            lister = row["lister_id"]
            await tx.append([lister], AdoptionApplication(seq=0, application=application))
            await notify(tx, self.presence, [lister], kind="adoption.application",
                         title=f"New application for {row['title']}"[:120],
                         body=message[:PREVIEW_CHARS],
                         data={"listing_id": row["id"], "application_id": application.id,
                               "applicant_id": user_id})
            return ApplicationResult(application=application)

        return await run_idempotent(self.stream, user_id=user_id, scope="adoption.apply",
                                    key=cmd.idempotency_key, result_type=ApplicationResult,
                                    work=work)

    async def _visible_application(self, conn: asyncpg.Connection, application_id: str,
                                   viewer: str) -> asyncpg.Record:
        parsed = require_id(application_id, "application_id", "no such application")
        row = await store.select_application(conn, parsed)
        if row is None or not (
                row["applicant_id"] == viewer or (row["lister_id"] == viewer
                and not await blocked_between(conn, viewer, row["applicant_id"]))):
            raise NotFound("application_id: no such application")
        return row

    async def _locked(self, tx: Transaction, row: asyncpg.Record) -> asyncpg.Record:
        """Lock the application's listing, then the application (always in that order),
        and read both again."""
        await tx.conn.execute("SELECT 1 FROM adoption_listings WHERE id = $1 FOR UPDATE",
                              row["listing_id"])
        locked = await store.select_application(tx.conn, row["id"], for_update=True)
        assert locked is not None
        return locked

    async def withdraw(self, user_id: str, application_id: str) -> ApplicationResult:
        async with self.stream.transaction() as tx:
            row = await self._visible_application(tx.conn, application_id, user_id)
            if row["applicant_id"] != user_id:
                raise Forbidden("application_id: only the applicant can withdraw it")
            row = await self._locked(tx, row)
            if row["status"] not in LIVE:
                raise Conflict(f"application_id: the application is {row['status']}")
            updated = await store.update_application(
                tx.conn, row["id"], status=ApplicationStatus.WITHDRAWN.value)
            if (row["status"] == ApplicationStatus.ACCEPTED.value
                    and row["listing_status"] == ListingStatus.PENDING.value):
                await store.update_listing(tx.conn, row["listing_id"],
                                           {"status": ListingStatus.AVAILABLE.value})
            application = application_from(updated)
            if not await blocked_between(tx.conn, user_id, row["lister_id"]):
                await tx.append([row["lister_id"]],
                                AdoptionApplication(seq=0, application=application))
            return ApplicationResult(application=application)

    async def decide(self, user_id: str, cmd: AdoptionDecide) -> ApplicationResult:
        async with self.stream.transaction() as tx:
            row = await self._visible_application(tx.conn, cmd.application_id, user_id)
            if row["lister_id"] != user_id:
                raise Forbidden("application_id: only the lister can decide on it")
            row = await self._locked(tx, row)
            if row["status"] != ApplicationStatus.SUBMITTED.value:
                raise Conflict(f"application_id: the application is {row['status']}")
            note = (cmd.note or "").strip() or None
            if cmd.decision is ApplicationDecision.ACCEPT:
                if row["listing_status"] != ListingStatus.AVAILABLE.value:
                    raise Conflict("application_id: the listing is "
                                   f"{row['listing_status']}; no second acceptance")
                conversation_id = await chat_store.insert_conversation(
                    tx.conn, sorted([user_id, row["applicant_id"]]))
                try:
                    updated = await store.update_application(
                        tx.conn, row["id"], status=ApplicationStatus.ACCEPTED.value,
                        note=note, conversation_id=conversation_id)
                except asyncpg.UniqueViolationError:  # only if the listing lock were bypassed
                    raise Conflict("application_id: another application is accepted") from None
                await store.update_listing(tx.conn, row["listing_id"],
                                           {"status": ListingStatus.PENDING.value})
            else:
                updated = await store.update_application(
                    tx.conn, row["id"], status=ApplicationStatus.REJECTED.value, note=note)
            await self._tell_applicants(tx, [updated], row["listing_title"])
            return ApplicationResult(application=application_from(updated))

    async def applications(self, user_id: str, listing_id: str | None, cursor: str | None,
                           limit: int) -> ApplicationsResult:
        after = decode_cursor(cursor, (datetime, str)) if cursor else None
        async with self.db.acquire() as conn:
            if listing_id is not None:
                listing = await self._listing(conn, listing_id, user_id)
                if listing["lister_id"] != user_id:
                    raise Forbidden("listing_id: only the lister sees its applications")
                sql = store.listing_applications_sql(after is not None)
                args: list[Any] = [user_id, limit + 1, listing["id"], *(after or ())]
            else:
                sql = store.own_applications_sql(after is not None)
                args = [user_id, limit + 1, *(after or ())]
            rows = await store.select_applications(conn, sql, args)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return ApplicationsResult(applications=[application_from(r) for r in rows],
                                  next_cursor=next_cursor)
