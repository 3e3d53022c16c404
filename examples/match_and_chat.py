"""Two owners register, create a pet each, like each other's pet into a match, and chat.

    python3 dev.py serve                       # in one terminal
    python3 dev.py example                     # in another: against http://127.0.0.1:8080
    .venv/bin/python examples/match_and_chat.py http://127.0.0.1:8080   # the same, directly
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import aiohttp

from client import Client
from protocol.chat import ChatMessageEvent, ChatSend, MessageResult
from protocol.matching import Swipe, SwipeDirection, SwipeResult
from protocol.objects import Species
from protocol.pets import PetResult, PetsCreate


async def register(http: aiohttp.ClientSession, base: str, name: str) -> str:
    """POST /api/v1/auth/register; returns the access token for the socket."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    async with http.post(f"{base}/api/v1/auth/register", json={
        "email": email, "password": "a long secret 1", "display_name": name,
    }) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise SystemExit(f"register {name}: HTTP {resp.status} {body}")
        token: str = body["access_token"]
        return token


async def main(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        alice_token = await register(http, base, "Alice")
        bob_token = await register(http, base, "Bob")
    ws_url = base.replace("http", "ws", 1) + "/ws"
    async with Client(ws_url, token=alice_token) as alice, \
            Client(ws_url, token=bob_token) as bob:
        rex = (await alice.command(PetsCreate(id="", name="Rex", species=Species.DOG),
                                   PetResult)).pet
        mia = (await bob.command(PetsCreate(id="", name="Mia", species=Species.CAT),
                                 PetResult)).pet
        print(f"Alice created {rex.name} ({rex.id}), Bob created {mia.name} ({mia.id})")

        # In the app the target comes from discovery.candidates; here we know it.
        await alice.command(Swipe(id="", pet_id=rex.id, target_pet_id=mia.id,
                                  direction=SwipeDirection.LIKE), SwipeResult)
        liked_back = await bob.command(Swipe(id="", pet_id=mia.id, target_pet_id=rex.id,
                                             direction=SwipeDirection.LIKE), SwipeResult)
        match = liked_back.match
        if match is None:
            raise SystemExit("no match after two likes")
        print(f"match {match.id}, conversation {match.conversation_id}")

        sent = await alice.command(
            ChatSend(id="", conversation_id=match.conversation_id,
                     client_msg_id=str(uuid.uuid4()), body="Hi Bob! Rex would love to meet Mia."),
            MessageResult,
        )
        async with asyncio.timeout(10):
            async for event in bob.events():  # match.created, notifications, then the message
                if isinstance(event, ChatMessageEvent) and event.message.id == sent.message.id:
                    print(f"Bob received: {event.message.body!r} (seq {event.seq})")
                    break


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"))
