"""Random frames never crash the server: each is answered, ignored (pong/ack) or closed
with a defined code, and the socket keeps serving."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import MSGPACK
from protocol.codes import CloseCode
from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.ws import ConnectionClosedError, ProtocolSocket, open_session

DEFINED_CLOSES = {int(c) for c in CloseCode}
TAGS = ["hello", "pong", "ack", "chat.send", "lost.nearby", "auth.refresh", "pets.mine",
        "swipe", "notifications.read", "presence.query", "nope"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(TAGS)},
    optional={"id": st.one_of(st.text(max_size=70), st.integers(-(2**63), 2**64 - 1), st.none()),
              "seq": json_values, "body": json_values, "token": json_values,
              "location": json_values, "conversation_id": json_values},
)


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Draw ``count`` examples with hypothesis (deterministic), to send from an async test."""
    out: list[Any] = []

    @settings(max_examples=count, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(value: Any) -> None:
        out.append(value)

    draw()
    return out


async def probe(sock: ProtocolSocket, frame: bytes | str, sentinel: str) -> None:
    """Send a frame, then a sentinel command; read until the sentinel's reply."""
    await sock.send_raw(frame)
    marker = (msgspec.msgpack.encode({"type": "nope", "id": sentinel}) if sock.codec.binary
              else json.dumps({"type": "nope", "id": sentinel}))
    await sock.send_raw(marker)
    while True:
        message = await sock.receive(timeout=5)
        assert message.wire_type() in {"ok", "error", "welcome", "notification"}, message
        if getattr(message, "id", None) == sentinel:
            return


async def fuzz(app_client: AppClient, codec: str, frames: list[bytes | str]) -> None:
    client = await app_client(ws_rate_per_s=100_000.0, ws_rate_burst=100_000,
                              ws_frames_per_s=100_000.0, ws_frames_burst=100_000)
    user = await register(client)
    sock = await open_session(client, user.access_token, codec=codec)
    for i, frame in enumerate(frames):
        try:
            await probe(sock, frame, f"sentinel-{i}")
        except ConnectionClosedError as exc:
            assert exc.code in DEFINED_CLOSES, exc.code
            sock = await open_session(client, user.access_token, codec=codec)


async def test_random_bytes_and_json_shapes_on_json(app_client: AppClient) -> None:
    frames: list[bytes | str] = []
    frames += [b.decode("utf-8", "replace") for b in collect(st.binary(max_size=200), 60)]
    frames += [json.dumps(v) for v in collect(json_values, 60)]
    frames += [json.dumps(v) for v in collect(shaped, 120)]
    await fuzz(app_client, "petspark.v1.json", frames)


async def test_random_bytes_and_shapes_on_msgpack(app_client: AppClient) -> None:
    frames: list[bytes | str] = list(collect(st.binary(max_size=200), 60))
    frames += [msgspec.msgpack.encode(v) for v in collect(shaped, 120)]
    await fuzz(app_client, MSGPACK.name, frames)
