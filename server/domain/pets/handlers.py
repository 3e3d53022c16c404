"""pets.create, pets.update, pets.mine."""

from __future__ import annotations

from protocol.pets import PetResult, PetsCreate, PetsMine, PetsResult, PetsUpdate
from server.domain.pets import service
from server.gateway.dispatch import CommandContext, CommandRegistry
from server.state import DB, EVENT_STREAM


async def create(ctx: CommandContext, cmd: PetsCreate) -> PetResult:
    return await service.create_pet(ctx.app[EVENT_STREAM], ctx.user_id, cmd)


async def update(ctx: CommandContext, cmd: PetsUpdate) -> PetResult:
    return await service.update_pet(ctx.app[EVENT_STREAM], ctx.user_id, cmd)


async def mine(ctx: CommandContext, cmd: PetsMine) -> PetsResult:
    async with ctx.app[DB].acquire() as conn:
        return await service.my_pets(conn, ctx.user_id)


def register(registry: CommandRegistry) -> None:
    registry.add(PetsCreate, create)
    registry.add(PetsUpdate, update)
    registry.add(PetsMine, mine)
