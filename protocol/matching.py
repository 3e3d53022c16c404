"""Discovery, swiping and matches."""

from __future__ import annotations

from enum import StrEnum

from msgspec import UNSET, UnsetType

from protocol.base import Command, DurableEvent, Empty, Result
from protocol.objects import Candidate, Match, Preferences, Species
from protocol.types import AgeYears, Cursor, DistanceKm, Id, PageLimit50


class SwipeDirection(StrEnum):
    LIKE = "like"
    PASS = "pass"


class PreferencesResult(Result, kw_only=True):
    preferences: Preferences


class CandidatesResult(Result, kw_only=True):
    candidates: list[Candidate]
    next_cursor: Cursor | None = None


class SwipeResult(Result, omit_defaults=False, kw_only=True):
    """``match`` is always on the wire: the match a like completed (or the existing
    one on a repeat), else ``null``."""

    match: Match | None = None


class MatchesResult(Result, kw_only=True):
    matches: list[Match]
    """Newest first."""
    next_cursor: Cursor | None = None


class PreferencesUpdate(Command, tag="preferences.update", kw_only=True):
    """Change discovery preferences; absent fields are unchanged, ``null`` clears an age
    bound. ``min_age_years`` ≤ ``max_age_years`` when both are given."""

    species: list[Species] | UnsetType = UNSET
    min_age_years: AgeYears | UnsetType | None = UNSET
    max_age_years: AgeYears | UnsetType | None = UNSET
    max_distance_km: DistanceKm | UnsetType = UNSET
    result_type = PreferencesResult

    def __post_init__(self) -> None:
        low, high = self.min_age_years, self.max_age_years
        if isinstance(low, int) and isinstance(high, int) and low > high:
            raise ValueError("min_age_years: must not exceed max_age_years")


class DiscoveryCandidates(Command, tag="discovery.candidates", kw_only=True):
    """Pets that ``pet_id`` (the user's) may swipe on, by the user's preferences,
    nearest first; pets already swiped and the user's own are left out."""

    pet_id: Id
    limit: PageLimit50 = 20
    cursor: Cursor | None = None
    result_type = CandidatesResult


class Swipe(Command, tag="swipe", kw_only=True):
    """Like or pass on ``target_pet_id`` as the user's ``pet_id``. A like that completes
    a mutual like creates the match (``match.created`` to both owners). Repeating a
    swipe changes nothing and returns the existing match or null."""

    pet_id: Id
    target_pet_id: Id
    direction: SwipeDirection
    result_type = SwipeResult


class MatchesList(Command, tag="matches.list", kw_only=True):
    """The user's matches, newest first."""

    cursor: Cursor | None = None
    limit: PageLimit50 = 20
    result_type = MatchesResult


class MatchesUnmatch(Command, tag="matches.unmatch", kw_only=True):
    """Undo a match (either owner): the conversation closes (``conversation.closed``
    to both); repeating it is a no-op."""

    match_id: Id
    result_type = Empty


class MatchCreated(DurableEvent, tag="match.created", kw_only=True):
    """To both owners: a new match (and its conversation)."""

    match: Match
