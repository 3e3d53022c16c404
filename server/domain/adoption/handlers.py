"""adoption.* commands → ``AdoptionService``."""

from __future__ import annotations

from protocol.adoption import (
    AdoptionApplications,
    AdoptionApply,
    AdoptionDecide,
    AdoptionListing,
    AdoptionListings,
    AdoptionListPet,
    AdoptionUpdateListing,
    AdoptionWithdraw,
    ApplicationResult,
    ApplicationsResult,
    ListingResult,
    ListingsResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.adoption.service import AdoptionService


async def list_pet(adoption: AdoptionService, caller: Caller, cmd: AdoptionListPet
                   ) -> ListingResult:
    return await adoption.list_pet(caller.user_id, cmd)


async def update_listing(adoption: AdoptionService, caller: Caller, cmd: AdoptionUpdateListing
                         ) -> ListingResult:
    return await adoption.update_listing(caller.user_id, cmd)


async def listings(adoption: AdoptionService, caller: Caller, cmd: AdoptionListings
                   ) -> ListingsResult:
    return await adoption.listings(caller.user_id, cmd)


async def listing(adoption: AdoptionService, caller: Caller, cmd: AdoptionListing
                  ) -> ListingResult:
    return await adoption.listing(caller.user_id, cmd.listing_id)


async def apply(adoption: AdoptionService, caller: Caller, cmd: AdoptionApply
                ) -> ApplicationResult:
    return await adoption.apply(caller.user_id, cmd)


async def applications(adoption: AdoptionService, caller: Caller, cmd: AdoptionApplications
                       ) -> ApplicationsResult:
    return await adoption.applications(caller.user_id, cmd.listing_id, cmd.cursor, cmd.limit)


async def withdraw(adoption: AdoptionService, caller: Caller, cmd: AdoptionWithdraw
                   ) -> ApplicationResult:
    return await adoption.withdraw(caller.user_id, cmd.application_id)


async def decide(adoption: AdoptionService, caller: Caller, cmd: AdoptionDecide
                 ) -> ApplicationResult:
    return await adoption.decide(caller.user_id, cmd)


HANDLERS: AreaHandlers = {
    AdoptionListPet: list_pet,
    AdoptionUpdateListing: update_listing,
    AdoptionListings: listings,
    AdoptionListing: listing,
    AdoptionApply: apply,
    AdoptionApplications: applications,
    AdoptionWithdraw: withdraw,
    AdoptionDecide: decide,
}
