"""The pure parts: backoff delays, the close-code table, resendability, errors."""

from __future__ import annotations

import random

import pytest

from client import (
    Action,
    Backoff,
    CommandError,
    NotFound,
    RateLimited,
    plan_after_close,
)
from client.pending import is_resendable
from protocol import Error, ErrorCode
from protocol.chat import ChatSend
from protocol.objects import Species
from protocol.pets import PetsCreate, PetsMine
from tests.client.conftest import RecordingRng


def test_backoff_ceiling_doubles_from_base_up_to_cap() -> None:
    b = Backoff(base=0.5, cap=30.0)
    assert [b.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.ceiling(10_000) == 30.0  # no overflow


def test_backoff_is_full_jitter_over_zero_to_ceiling() -> None:
    rng = RecordingRng(fraction=0.25)
    b = Backoff(base=0.5, cap=3.0, rng=rng)  # type: ignore[arg-type]
    delays = [b.delay(n) for n in range(5)]
    assert rng.calls == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0)]
    assert delays == [0.125, 0.25, 0.5, 0.75, 0.75]


def test_backoff_real_random_stays_in_range_and_uses_all_of_it() -> None:
    b = Backoff(base=0.5, cap=30.0, rng=random.Random(7))
    samples = [b.delay(3) for _ in range(2000)]
    assert all(0 <= s <= 4.0 for s in samples)
    # Full jitter (not "equal jitter"): delays near 0 occur, mean is about half.
    assert min(samples) < 0.1
    assert 1.8 < sum(samples) / len(samples) < 2.2


@pytest.mark.parametrize("code", [4000, 4003, 1009])
def test_codes_a_retry_cannot_fix_stop(code: int) -> None:
    for provider in (False, True):
        plan = plan_after_close(code, has_token_provider=provider, auth_retry_used=False)
        assert plan.action is Action.STOP


def test_4001_stops_unless_a_token_provider_gets_one_retry() -> None:
    assert plan_after_close(4001, has_token_provider=False, auth_retry_used=False).action is (
        Action.STOP
    )
    assert plan_after_close(4001, has_token_provider=True, auth_retry_used=False).action is (
        Action.RECONNECT_NOW
    )
    assert plan_after_close(4001, has_token_provider=True, auth_retry_used=True).action is (
        Action.STOP
    )


def test_4009_needs_a_token_provider() -> None:
    assert plan_after_close(4009, has_token_provider=True, auth_retry_used=True).action is (
        Action.RECONNECT_NOW
    )
    assert plan_after_close(4009, has_token_provider=False, auth_retry_used=False).action is (
        Action.STOP
    )


@pytest.mark.parametrize("code", [1000, 1006, 1011, 4002, 4008, 4029])
def test_other_codes_reconnect_with_backoff(code: int) -> None:
    plan = plan_after_close(code, has_token_provider=False, auth_retry_used=False)
    assert plan.action is Action.RECONNECT_BACKOFF


def test_1001_reconnects_at_once() -> None:
    plan = plan_after_close(1001, has_token_provider=False, auth_retry_used=False)
    assert plan.action is Action.RECONNECT_NOW


def test_resendable_means_carrying_a_key() -> None:
    assert is_resendable(ChatSend(id="1", conversation_id="c", client_msg_id="k", body="x"))
    assert is_resendable(PetsCreate(id="1", name="Rex", species=Species.DOG, idempotency_key="k"))
    assert not is_resendable(PetsCreate(id="1", name="Rex", species=Species.DOG))
    assert not is_resendable(PetsMine(id="1"))


def test_error_reply_maps_to_its_subclass() -> None:
    e = CommandError.from_reply(
        Error(id="c1", code=ErrorCode.RATE_LIMITED, message="slow down", retry_after_s=1.5)
    )
    assert isinstance(e, RateLimited) and e.retry_after_s == 1.5 and e.command_id == "c1"
    assert isinstance(
        CommandError.from_reply(Error(id="c2", code=ErrorCode.NOT_FOUND, message="x")), NotFound
    )
