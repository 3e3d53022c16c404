"""Events are encoded once per commit and get each recipient's seq spliced in."""

from __future__ import annotations

import msgspec
import pytest

from protocol.base import DurableEvent
from protocol.codec import JSON
from server.realtime.stream import seq_offset, with_seq
from tests.protocol.samples import SERVER_SAMPLES

DURABLE = [m for m in SERVER_SAMPLES if isinstance(m, DurableEvent)]


def test_every_durable_event_type_is_sampled() -> None:
    from protocol.messages import DURABLE_EVENTS

    assert {m.wire_type() for m in DURABLE} == set(DURABLE_EVENTS)


@pytest.mark.parametrize("event", DURABLE, ids=lambda e: e.wire_type())
@pytest.mark.parametrize("seq", [1, 9, 10, 12345, 2**53])
def test_splicing_the_seq_equals_encoding_with_it(event: DurableEvent, seq: int) -> None:
    template = JSON.encode(msgspec.structs.replace(event, seq=0))
    at = seq_offset(template, event.wire_type())
    assert with_seq(template, at, seq) == JSON.encode(msgspec.structs.replace(event, seq=seq))


def test_unexpected_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="unexpected event layout"):
        seq_offset(b'{"seq":0,"type":"x"}', "x")
