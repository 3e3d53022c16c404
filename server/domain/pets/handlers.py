"""pets.create, pets.update, pets.mine → ``PetService``."""

from __future__ import annotations

from protocol.pets import PetResult, PetsCreate, PetsMine, PetsResult, PetsUpdate
from server.commands import AreaHandlers, Caller
from server.domain.pets.service import PetService


async def create(pets: PetService, caller: Caller, cmd: PetsCreate) -> PetResult:
    return await pets.create(caller.user_id, cmd)


async def update(pets: PetService, caller: Caller, cmd: PetsUpdate) -> PetResult:
    return await pets.update(caller.user_id, cmd)


async def mine(pets: PetService, caller: Caller, cmd: PetsMine) -> PetsResult:
    return await pets.mine(caller.user_id)


HANDLERS: AreaHandlers = {
    PetsCreate: create,
    PetsUpdate: update,
    PetsMine: mine,
}
