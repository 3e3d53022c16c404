"""Domain tests run through the real gateway: real app(s), PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from protocol.base import Command, Result
from protocol.matching import Swipe, SwipeDirection
from protocol.objects import Match, Pet, Species
from protocol.pets import PetsCreate
from protocol.session import Error
from protocol.types import Location
from tests.conftest import AppClient
from tests.support.auth import Registered, register
from tests.support.ws import ProtocolSocket, open_session

__all__ = ["AppClient"]
_ids = itertools.count(1)


def cid() -> str:
    return f"t{next(_ids)}"


@dataclass
class User:
    client: TestClient
    reg: Registered
    sock: ProtocolSocket

    @property
    def id(self) -> str:
        return self.reg.user_id

    async def cmd(self, command: Command) -> Any:
        """Run a command that must succeed; return its typed result."""
        return await self.sock.command(command)

    async def error(self, command: Command) -> Error:
        reply = await self.sock.request(command)
        assert isinstance(reply, Error), f"expected an error, got {reply}"
        return reply

    async def connect(self, **hello: Any) -> ProtocolSocket:
        """Another device of the same user."""
        return await open_session(self.client, self.reg.access_token, **hello)

    async def pet(self, name: str = "Rex", lat: float = 52.52, lng: float = 13.405,
                  species: Species = Species.DOG, **fields: Any) -> Pet:
        result = await self.cmd(PetsCreate(id=cid(), name=name, species=species,
                                           location=Location(lat=lat, lng=lng), **fields))
        pet: Pet = result.pet
        return pet


async def new_user(client: TestClient, name: str = "Test") -> User:
    reg = await register(client, display_name=name)
    sock = await open_session(client, reg.access_token)
    return User(client=client, reg=reg, sock=sock)


async def make_match(a: User, pet_a: Pet, b: User, pet_b: Pet) -> Match:
    """A likes B (no match), B likes A (match); both sockets' match.created and
    notification events are consumed."""
    first = await a.cmd(Swipe(id=cid(), pet_id=pet_a.id, target_pet_id=pet_b.id,
                              direction=SwipeDirection.LIKE))
    assert first.match is None
    second = await b.cmd(Swipe(id=cid(), pet_id=pet_b.id, target_pet_id=pet_a.id,
                               direction=SwipeDirection.LIKE))
    assert second.match is not None
    for user in (a, b):
        await user.sock.expect("match.created")
        await user.sock.expect("notification")
    match: Match = second.match
    return match


def result_of(_: type[Result]) -> None:  # pragma: no cover - typing aid only
    return None


async def wait_online(client: TestClient, user_id: str, online: bool,
                      timeout: float = 5.0) -> None:
    """Until presence says ``online`` for the user (socket close is processed async)."""
    from server.state import RUNTIME

    presence = client.server.app[RUNTIME].deps.presence
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await presence.online([user_id]))[user_id] != online:
        assert loop.time() < deadline, f"{user_id} still online={not online}"
        await asyncio.sleep(0.02)
