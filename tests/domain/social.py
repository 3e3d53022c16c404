"""Helpers for the adoption, community and safety tests (issue #12): the database of a
node, uploads, admins, bans, posts, listings, and EXPLAIN of a store's SQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from protocol.adoption import AdoptionApply, AdoptionListPet, Application, Listing
from protocol.community import Post, PostsCreate
from protocol.objects import Pet
from protocol.safety import UsersBlock
from protocol.types import Location
from server.state import RUNTIME
from tests.domain.conftest import User, cid, new_user

UNKNOWN = "00000000-0000-4000-8000-000000000000"
HERE = Location(lat=52.52, lng=13.405)


def db(client: TestClient) -> asyncpg.Pool:
    pool: asyncpg.Pool = client.server.app[RUNTIME].deps.db
    return pool


async def add_upload(client: TestClient, owner_id: str, status: str = "pending") -> str:
    """An upload row of ``owner_id`` (the HTTP flow is the uploads suite's concern)."""
    upload_id: str = await db(client).fetchval(
        """INSERT INTO uploads (owner_id, purpose, status, flow, content_type, size,
                                received_bytes, object_key, expires_at)
           VALUES ($1, 'pet_photo', $2, 'direct', 'image/jpeg', 10, 10, 'k',
                   now() + interval '1h')
           RETURNING id::text""",
        owner_id, status)
    return upload_id


async def is_public(client: TestClient, upload_id: str) -> bool:
    return bool(await db(client).fetchval("SELECT public FROM uploads WHERE id = $1",
                                          upload_id))


async def new_admin(client: TestClient, name: str = "Admin") -> User:
    """A user whose stored role is admin (the role is read when the socket connects)."""
    user = await new_user(client, name)
    await db(client).execute("UPDATE users SET role = 'admin' WHERE id = $1", user.id)
    await user.sock.close()
    user.sock = await user.connect()
    return user


async def ban(client: TestClient, user: User) -> None:
    """Mark the user banned in the database (what admin.ban stores; its socket
    handling is the admin area's)."""
    await db(client).execute("UPDATE users SET banned_at = now() WHERE id = $1", user.id)


async def block(blocker: User, blocked: User) -> None:
    await blocker.cmd(UsersBlock(id=cid(), user_id=blocked.id))


async def post(user: User, body: str = "Rex at the beach", **fields: Any) -> Post:
    result = await user.cmd(PostsCreate(id=cid(), body=body, **fields))
    created: Post = result.post
    return created


async def listing(user: User, pet: Pet | None = None, title: str = "Rex needs a home",
                  location: Location = HERE, **fields: Any) -> Listing:
    pet = pet or await user.pet("Rex")
    result = await user.cmd(AdoptionListPet(id=cid(), pet_id=pet.id, title=title,
                                            description="A calm dog", location=location,
                                            **fields))
    created: Listing = result.listing
    return created


async def apply(user: User, listing_id: str, message: str = "We have a garden",
                **fields: Any) -> Application:
    result = await user.cmd(AdoptionApply(id=cid(), listing_id=listing_id, message=message,
                                          **fields))
    application: Application = result.application
    return application


async def plan(conn: asyncpg.Connection | asyncpg.Pool, sql: str, *args: Any) -> str:
    """The JSON plan of ``sql`` as one string (index names appear as "Index Name")."""
    text = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    return json.dumps(json.loads(text))


def index_names(plan_json: str) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Index Name" in node:
                found.add(node["Index Name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(plan_json))
    return found


def scans(plan_json: str) -> set[str]:
    """(node type, relation) of every scan in the plan, e.g. 'Seq Scan posts'."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Relation Name" in node:
                found.add(f"{node['Node Type']} {node['Relation Name']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(plan_json))
    return found
