"""Preferences, discovery, swipes and matches.

The mutual like is race-free: every swipe between two pets (either direction)
first takes a transaction-scoped advisory lock on the ordered pair, so of two
likes arriving at once on different nodes one commits first and the other,
running after it, sees that like and creates the match. The unique key on the
ordered pair backs this up: even without the lock there could never be two
matches (the loser's insert does nothing and it returns the winner's match).
"""

from __future__ import annotations

import math
from datetime import datetime

import asyncpg
import msgspec
from msgspec import UNSET

from protocol.base import Empty
from protocol.chat import ConversationClosed
from protocol.matching import (
    CandidatesResult,
    MatchCreated,
    MatchesResult,
    PreferencesResult,
    PreferencesUpdate,
    Swipe,
    SwipeDirection,
    SwipeResult,
)
from protocol.objects import Candidate, Match, Pet, Preferences, Species
from protocol.types import Location
from server.deps import Deps
from server.domain.chat import store as chat_store
from server.domain.cursors import decode_cursor, encode_cursor
from server.domain.matching import store
from server.domain.notifications.service import notify
from server.domain.pets import store as pet_store
from server.domain.pets.service import pet_from_row
from server.domain.safety import store as safety_store
from server.errors import BadRequest, Forbidden, NotFound
from server.ids import require_id

DEFAULT_MAX_DISTANCE_KM = 50
M_PER_DEG_LAT = 111_320.0
COARSE_REACH_M = 800.0
"""How far ``coarse_deg`` (0.01°) can move a point: ≤ 0.005° on each axis, ≤ 787 m."""


def stranger_pet(row: asyncpg.Record) -> Pet:
    """Another owner's pet as discovery shows it: at its public point (0.01°)."""
    pet = pet_from_row(row)
    if row["pub_lat"] is None:
        return pet
    return msgspec.structs.replace(
        pet, location=Location(lat=row["pub_lat"], lng=row["pub_lng"]))


def match_from_row(row: asyncpg.Record) -> Match:
    return Match(id=row["id"], pet_ids=[row["pet_a"], row["pet_b"]],
                 user_ids=[row["user_a"], row["user_b"]],
                 conversation_id=row["conversation_id"], created_at=row["created_at"])


def _preferences(row: asyncpg.Record | None) -> Preferences:
    if row is None:
        return Preferences(species=[], max_distance_km=DEFAULT_MAX_DISTANCE_KM)
    return Preferences(species=[Species(s) for s in row["species"]],
                       min_age_years=row["min_age_years"], max_age_years=row["max_age_years"],
                       max_distance_km=row["max_distance_km"])


class MatchingService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.presence = deps.presence

    async def update_preferences(self, user_id: str, cmd: PreferencesUpdate
                                 ) -> PreferencesResult:
        async with self.stream.transaction() as tx:
            prefs = _preferences(await store.select_preferences(tx.conn, user_id, for_update=True))
            if cmd.species is not UNSET:
                prefs.species = list(dict.fromkeys(cmd.species))
            if cmd.min_age_years is not UNSET:
                prefs.min_age_years = cmd.min_age_years
            if cmd.max_age_years is not UNSET:
                prefs.max_age_years = cmd.max_age_years
            if cmd.max_distance_km is not UNSET:
                prefs.max_distance_km = cmd.max_distance_km
            low, high = prefs.min_age_years, prefs.max_age_years
            if low is not None and high is not None and low > high:
                raise BadRequest("min_age_years: must not exceed max_age_years")
            await store.upsert_preferences(tx.conn, user_id, [s.value for s in prefs.species],
                                           low, high, prefs.max_distance_km)
        return PreferencesResult(preferences=prefs)

    async def candidates(self, user_id: str, pet_id: str, limit: int, cursor: str | None
                         ) -> CandidatesResult:
        async with self.db.acquire() as conn:
            pet = await _own_pet(conn, user_id, pet_id)
            if pet["lat"] is None:
                raise BadRequest("pet_id: give the pet a location before discovery")
            prefs = _preferences(await store.select_preferences(conn, user_id))
            after: tuple[float, str] | None = None
            if cursor is not None:
                distance, last_id = decode_cursor(cursor, (float, str))
                after = (distance, last_id)
            radius_m = prefs.max_distance_km * 1000.0
            rows = await store.select_candidates(
                conn, user_id=user_id, pet_id=pet["id"], lat=pet["lat"], lng=pet["lng"],
                box=bounding_box(pet["lat"], pet["lng"], radius_m + COARSE_REACH_M),
                species=[s.value for s in prefs.species], min_age=prefs.min_age_years,
                max_age=prefs.max_age_years, max_distance_m=radius_m, after=after,
                limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            items = [Candidate(pet=stranger_pet(r), distance_m=float(r["distance_m"]))
                     for r in rows]
            # The cursor carries the band shown and the id — what the page already says —
            # so the next page's (band, id) > (cursor) comparison is stable (no pet skipped
            # or repeated) and decoding it tells nothing more precise.
            next_cursor = (encode_cursor(float(rows[-1]["distance_m"]), rows[-1]["id"])
                           if more and rows else None)
            return CandidatesResult(candidates=items, next_cursor=next_cursor)

    async def record_swipe(self, user_id: str, cmd: Swipe) -> SwipeResult:
        pet_id = require_id(cmd.pet_id, "pet_id", "no such pet")
        target_id = require_id(cmd.target_pet_id, "target_pet_id", "no such pet")
        if pet_id == target_id:
            raise BadRequest("target_pet_id: a pet cannot swipe on itself")
        pet_a, pet_b = sorted((pet_id, target_id))
        async with self.stream.transaction() as tx:
            conn = tx.conn
            await store.lock_pet_pair(conn, pet_a, pet_b)
            pets = await store.select_pets_with_owner(conn, [pet_id, target_id])
            own, target = pets.get(pet_id), pets.get(target_id)
            if own is None or (own["owner_id"] != user_id and own["owner_banned"]):
                raise NotFound("pet_id: no such pet")
            if own["owner_id"] != user_id:
                raise Forbidden("pet_id: not one of your pets")
            if target is None or target["owner_banned"]:
                raise NotFound("target_pet_id: no such pet")
            if target["owner_id"] == user_id:
                raise BadRequest("target_pet_id: one of your own pets")
            # The user-pair lock orders this swipe against a block between the owners.
            await safety_store.lock_user_pair(conn, user_id, target["owner_id"])
            if await safety_store.blocked_between(conn, user_id, target["owner_id"]):
                raise NotFound("target_pet_id: no such pet")
            inserted = await store.insert_swipe(conn, pet_id, target_id, cmd.direction.value)
            existing = await store.select_match_by_pair(conn, pet_a, pet_b)
            if existing is not None:
                return SwipeResult(match=match_from_row(existing)
                                   if existing["unmatched_at"] is None else None)
            if not inserted or cmd.direction is not SwipeDirection.LIKE:
                return SwipeResult(match=None)
            if await store.select_swipe_direction(conn, target_id, pet_id) != "like":
                return SwipeResult(match=None)
            owners = {pet_id: user_id, target_id: target["owner_id"]}
            users = [owners[pet_a], owners[pet_b]]
            conversation_id = await chat_store.insert_conversation(conn, users)
            row = await store.insert_match(conn, pet_a=pet_a, pet_b=pet_b, user_a=users[0],
                                           user_b=users[1], conversation_id=conversation_id)
            if row is None:  # only reachable if the pair lock were bypassed; the key holds
                raise NotFound("target_pet_id: no such pet")
            match = match_from_row(row)
            await tx.append(users, MatchCreated(seq=0, match=match))
            names = {pet_id: own["name"], target_id: target["name"]}
            for mine, theirs in ((pet_id, target_id), (target_id, pet_id)):
                await notify(tx, self.presence, [owners[mine]], kind="match.created",
                             title="It's a match!",
                             body=f"{names[mine]} and {names[theirs]} liked each other",
                             data={"match_id": match.id, "conversation_id": conversation_id,
                                   "pet_id": mine, "other_pet_id": theirs})
            return SwipeResult(match=match)

    async def list_matches(self, user_id: str, cursor: str | None, limit: int
                           ) -> MatchesResult:
        conn = self.db
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            at, mid = decode_cursor(cursor, (datetime, str))
            after = (at, mid)
        rows = await store.select_matches(conn, user_id, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return MatchesResult(
            matches=[match_from_row(r) for r in rows],
            next_cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None)

    async def unmatch(self, user_id: str, match_id: str) -> Empty:
        require_id(match_id, "match_id", "no such match")
        async with self.stream.transaction() as tx:
            row = await store.select_match_of_user_for_update(tx.conn, match_id, user_id)
            if row is None:
                raise NotFound("match_id: no such match")
            if row["unmatched_at"] is not None:
                return Empty()  # repeating is a no-op
            await store.update_match_unmatched(tx.conn, row["id"], user_id)
            await chat_store.update_conversation_closed(tx.conn, row["conversation_id"])
            await tx.append([row["user_a"], row["user_b"]],
                            ConversationClosed(seq=0, conversation_id=row["conversation_id"]))
        return Empty()


async def _own_pet(conn: asyncpg.Connection, user_id: str, pet_id: str) -> asyncpg.Record:
    require_id(pet_id, "pet_id", "no such pet")
    row = await pet_store.select_pet(conn, pet_id)
    if row is None or (row["owner_id"] != user_id and row["owner_banned"]):
        raise NotFound("pet_id: no such pet")
    if row["owner_id"] != user_id:
        raise Forbidden("pet_id: not one of your pets")
    return row


def bounding_box(lat: float, lng: float, radius_m: float
                 ) -> tuple[float, float, float | None, float | None]:
    """(min_lat, max_lat, min_lng, max_lng) around a point; the longitudes are None when
    the box reaches a pole or crosses the antimeridian (then latitude alone prefilters)."""
    dlat = radius_m / M_PER_DEG_LAT
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -90 or max_lat >= 90:
        return max(min_lat, -90.0), min(max_lat, 90.0), None, None
    dlng = dlat / max(math.cos(math.radians(max(abs(min_lat), abs(max_lat)))), 1e-9)
    min_lng, max_lng = lng - dlng, lng + dlng
    if min_lng < -180 or max_lng > 180:
        return min_lat, max_lat, None, None
    return min_lat, max_lat, min_lng, max_lng
