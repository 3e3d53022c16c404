"""The media path behind one interface: what ``publish`` / ``view`` and ``stream.media`` say.

- ``P2PMedia`` (``LIVE_MEDIA=p2p``, the default): the host's client makes one WebRTC
  peer connection per viewer, signalled over the socket (``live.signal``); at most
  ``LIVE_P2P_MAX_VIEWERS`` viewers. The server hands out the host's id, the cap and the
  STUN/TURN URLs of ``LIVE_ICE_SERVERS``.
- ``LiveKitMedia`` (``LIVE_MEDIA=livekit``): a LiveKit room ``live-<stream id>`` per
  stream and an access token minted with LiveKit's server SDK (``livekit-api``): HS256,
  ``iss`` = the API key, ``sub`` = the user id, ``video.roomJoin`` for that room; only
  the host's token may publish (``canPublish``, ``canPublishData``), a viewer's only
  subscribes. Valid for ``LIVE_TOKEN_TTL_S``. No viewer cap: LiveKit's SFU fans out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta

from livekit.api.access_token import AccessToken, VideoGrants

from protocol.objects import LiveMedia, MediaAccess, MediaKind, MediaRole
from protocol.types import utc_now
from server.errors import Unavailable
from server.settings import Settings


def livekit_room(stream_id: str) -> str:
    return f"live-{stream_id}"


class Media(ABC):
    kind: MediaKind

    @property
    @abstractmethod
    def capacity(self) -> int | None:
        """Most viewers a stream admits (None: no cap)."""

    @abstractmethod
    def describe(self, stream_id: str) -> LiveMedia:
        """``stream.media``: what anyone may know about the stream's media path."""

    @abstractmethod
    def access(self, *, stream_id: str, host_id: str, user_id: str, display_name: str,
               role: MediaRole) -> MediaAccess:
        """``publish`` (role host) or ``view`` (role viewer) for one user."""


class P2PMedia(Media):
    kind = MediaKind.P2P

    def __init__(self, max_viewers: int, ice_servers: tuple[str, ...]) -> None:
        self.max_viewers = max_viewers
        self.ice_servers = list(ice_servers)

    @property
    def capacity(self) -> int | None:
        return self.max_viewers

    def describe(self, stream_id: str) -> LiveMedia:
        return LiveMedia(kind=self.kind, max_viewers=self.max_viewers)

    def access(self, *, stream_id: str, host_id: str, user_id: str, display_name: str,
               role: MediaRole) -> MediaAccess:
        return MediaAccess(kind=self.kind, role=role, host_id=host_id,
                           max_viewers=self.max_viewers, ice_servers=self.ice_servers)


class LiveKitMedia(Media):
    kind = MediaKind.LIVEKIT

    def __init__(self, url: str, api_key: str, api_secret: str, token_ttl_s: int) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.ttl = timedelta(seconds=token_ttl_s)

    @property
    def capacity(self) -> int | None:
        return None

    def describe(self, stream_id: str) -> LiveMedia:
        return LiveMedia(kind=self.kind, url=self.url, room=livekit_room(stream_id))

    def access(self, *, stream_id: str, host_id: str, user_id: str, display_name: str,
               role: MediaRole) -> MediaAccess:
        room = livekit_room(stream_id)
        host = role == MediaRole.HOST
        # VideoGrants allows publishing by default: a viewer's token must say it may not.
        grants = VideoGrants(room_join=True, room=room, can_subscribe=True,
                             can_publish=host, can_publish_data=host)
        expires_at = utc_now() + self.ttl
        token = (AccessToken(self.api_key, self.api_secret)
                 .with_identity(user_id)
                 .with_name(display_name)
                 .with_grants(grants)
                 .with_ttl(self.ttl)
                 .to_jwt())
        return MediaAccess(kind=self.kind, role=role, host_id=host_id, url=self.url,
                           room=room, identity=user_id, token=token,
                           expires_at=expires_at.replace(microsecond=0))


class MediaModes:
    """The configured mode for new streams, and the one each existing stream uses."""

    def __init__(self, settings: Settings) -> None:
        self.default = MediaKind(settings.live_media)
        self._modes: dict[MediaKind, Media] = {
            MediaKind.P2P: P2PMedia(settings.live_p2p_max_viewers, settings.live_ice_servers),
        }
        if settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret:
            self._modes[MediaKind.LIVEKIT] = LiveKitMedia(
                settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret,
                settings.live_token_ttl_s)

    def get(self, kind: str) -> Media:
        found = self._modes.get(MediaKind(kind))
        if found is None:  # a livekit stream after LiveKit was unconfigured
            raise Unavailable("stream_id: this stream's media server is not configured")
        return found

    @property
    def livekit(self) -> LiveKitMedia | None:
        media = self._modes.get(MediaKind.LIVEKIT)
        return media if isinstance(media, LiveKitMedia) else None
