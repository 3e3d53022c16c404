"""A real WebRTC session set up only through the server's ``live.signal`` (LIVE_MEDIA=p2p).

Two aiortc peers: the host sends a generated video track, the viewer decodes it. The
offer, the answer and the ICE candidates (in the SDP: aiortc gathers before it answers)
travel only as ``live.signal`` over the two sockets, host and viewer on different nodes.
The media itself flows peer to peer over loopback — the server never carries it.
"""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import aioice.ice
import av
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)

from protocol.live import LiveSignalCommand
from tests.conftest import AppClient
from tests.domain.conftest import User, cid, new_user
from tests.domain.live.helpers import go_live, join, next_of

FRAMES = 15
WIDTH, HEIGHT = 320, 240


class Generated(VideoStreamTrack):
    """A moving test pattern (what a phone camera would be)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for i, plane in enumerate(frame.planes):
            # A brightness ramp that moves every frame (luma), neutral colour (chroma).
            level = (self.n * 9) % 256 if i == 0 else 128
            plane.update(bytes([level]) * plane.buffer_size)
        self.n += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice never offers 127.0.0.1 as a host candidate; this machine has no other
    # usable interface (no network), so the peers are told to use loopback.
    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def signal(user: User, stream_id: str, to: str, data: dict[str, Any]) -> None:
    await user.cmd(LiveSignalCommand(id=cid(), stream_id=stream_id, to=to, data=data))


async def test_video_reaches_the_viewer_over_a_session_signalled_by_the_server(
        app_client: AppClient, loopback_ice: None) -> None:
    a, b = await app_client(), await app_client()
    host, viewer = await new_user(a, "Host"), await new_user(b, "Viewer")
    started = await go_live(host)
    stream_id = started.stream.id
    view = (await join(viewer, stream_id)).view
    assert view.kind == "p2p" and view.host_id == host.id
    config = RTCConfiguration(iceServers=[])  # no public STUN: loopback only
    host_pc, viewer_pc = RTCPeerConnection(config), RTCPeerConnection(config)
    got: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    viewer_pc.on("track", got.put_nowait)
    try:
        # Viewer → host: "I'm here" (a client's cue for the host to call it).
        await signal(viewer, stream_id, view.host_id, {"type": "ready"})
        ready = await next_of(host.sock, "live.signal")
        assert ready.from_ == viewer.id and ready.data == {"type": "ready"}

        # Host → viewer: the offer, with its ICE candidates.
        host_pc.addTrack(Generated())
        await host_pc.setLocalDescription(await host_pc.createOffer())
        offer = host_pc.localDescription
        assert "a=candidate" in offer.sdp
        await signal(host, stream_id, ready.from_, {"type": offer.type, "sdp": offer.sdp})

        relayed = await next_of(viewer.sock, "live.signal")
        assert relayed.from_ == host.id and relayed.data["type"] == "offer"
        await viewer_pc.setRemoteDescription(RTCSessionDescription(**relayed.data))
        await viewer_pc.setLocalDescription(await viewer_pc.createAnswer())
        answer = viewer_pc.localDescription
        await signal(viewer, stream_id, host.id, {"type": answer.type, "sdp": answer.sdp})

        back = await next_of(host.sock, "live.signal")
        assert back.from_ == viewer.id and back.data["type"] == "answer"
        await host_pc.setRemoteDescription(RTCSessionDescription(**back.data))

        track = await asyncio.wait_for(got.get(), timeout=15)
        assert track.kind == "video"
        frames = []
        for _ in range(FRAMES):
            frame = await asyncio.wait_for(track.recv(), timeout=15)
            frames.append(frame)
        assert all(isinstance(f, av.VideoFrame) for f in frames)
        assert (frames[-1].width, frames[-1].height) == (WIDTH, HEIGHT)
        assert frames[-1].pts > frames[0].pts
        # Decoded pictures, not placeholders: the moving ramp shows.
        assert bytes(frames[0].planes[0]) != bytes(frames[-1].planes[0])
        assert isinstance(frames[0].time_base, fractions.Fraction)
        assert host_pc.connectionState == "connected"
    finally:
        await asyncio.gather(host_pc.close(), viewer_pc.close())
