"""Build the providers ``Settings`` describe: one per platform, the log default elsewhere."""

from __future__ import annotations

from aiohttp.abc import AbstractResolver

from server.observability.metrics import Metrics
from server.push import guard
from server.push.apns import ApnsProvider
from server.push.fcm import FcmProvider
from server.push.log import LogPushProvider
from server.push.provider import Platform, PushProvider, WebPushSubscription
from server.push.webpush import WebPushProvider
from server.settings import Settings


class PushProviders:
    """What the outbox worker and the device commands need from the push layer."""

    def __init__(
        self, by_platform: dict[Platform, PushProvider], *, allow_private: bool = False,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._by_platform = by_platform
        self._allow_private = allow_private
        self._resolver = resolver

    def for_platform(self, platform: Platform) -> PushProvider:
        return self._by_platform[platform]

    @property
    def names(self) -> dict[Platform, str]:
        """Which provider serves each platform (``log`` where none is configured)."""
        return {p: provider.name for p, provider in self._by_platform.items()}

    @property
    def webpush_public_key(self) -> str | None:
        """For ``push.config``: the VAPID public key, when Web Push is set up."""
        provider = self._by_platform.get("webpush")
        return provider.public_key() if isinstance(provider, WebPushProvider) else None

    async def check_subscription(self, subscription: WebPushSubscription) -> None:
        """The registration-time guard (§10.7); raises ``EndpointRefused`` (bad_request).
        Applies whether or not Web Push is configured."""
        await guard.check_subscription(
            subscription, allow_private=self._allow_private, resolver=self._resolver
        )

    async def close(self) -> None:
        for provider in {id(p): p for p in self._by_platform.values()}.values():
            await provider.close()


def build_push_providers(settings: Settings, metrics: Metrics | None = None) -> PushProviders:
    """Providers for every platform. Settings were checked at load (``_check_cross_field``),
    so a half configuration never gets here."""
    fallback = LogPushProvider(metrics=metrics)
    by_platform: dict[Platform, PushProvider] = {
        "webpush": fallback, "fcm": fallback, "apns": fallback,
    }
    if settings.vapid_private_key and settings.vapid_subject:
        by_platform["webpush"] = WebPushProvider(
            settings.vapid_private_key, settings.vapid_subject,
            allow_private=settings.push_allow_private_endpoints, metrics=metrics,
        )
    if settings.fcm_credentials_file:
        by_platform["fcm"] = FcmProvider.from_file(
            settings.fcm_credentials_file, endpoint=settings.fcm_endpoint, metrics=metrics
        )
    if settings.apns_key_file and settings.apns_key_id and settings.apns_team_id \
            and settings.apns_topic:
        by_platform["apns"] = ApnsProvider.from_file(
            settings.apns_key_file, key_id=settings.apns_key_id,
            team_id=settings.apns_team_id, topic=settings.apns_topic,
            endpoint=settings.apns_endpoint, metrics=metrics,
        )
    return PushProviders(by_platform, allow_private=settings.push_allow_private_endpoints)
