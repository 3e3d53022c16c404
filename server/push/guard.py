"""Server-side request forgery guard for Web Push endpoints (PROTOCOL §10.7).

A Web Push endpoint is a URL a *client* chose, and the server POSTs to it. Without a
guard, a user could make the server call its own admin ports, the cloud metadata
service or anything on the private network. So an endpoint must be an ``https`` URL
whose host resolves to public addresses only. ``PUSH_ALLOW_PRIVATE_ENDPOINTS=true``
(tests only) lifts the address rule and also allows ``http``.

The rule is checked twice:

- at registration, ``check_subscription`` (called by ``devices.register``) refuses a
  bad endpoint with a clear ``BadRequest`` (wire ``bad_request``);
- at send time, because DNS can change after registration (DNS rebinding):
  ``guarded_connector`` gives the Web Push session a resolver that refuses a host
  with any non-public address, and a socket factory that refuses to open a socket to
  one — the last word, which also covers IP-literal hosts (aiohttp does not resolve
  those) — and the provider never follows redirects.

"Public" is stricter than ``ipaddress``'s ``is_global``: multicast, reserved,
loopback, link-local, private, shared (100.64/10), documentation and unspecified
addresses are refused, and IPv6 forms that embed an IPv4 address (IPv4-mapped
``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by that
IPv4 address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives.asymmetric import ec
from yarl import URL

from server.errors import BadRequest
from server.push.provider import WebPushSubscription

MAX_ENDPOINT_CHARS = 2048
RESOLVE_TIMEOUT_S = 5.0
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(BadRequest):
    """A subscription the server will not push to (registration time)."""


class RefusedAddress(OSError):
    """A connection to a non-public address was refused (send time)."""


def address_is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None:
            return address_is_public(embedded)
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
        or ip.is_private or ip.is_unspecified
    )


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _decode_b64url(value: str, field: str) -> bytes:
    if not value or len(value) > 200:
        raise EndpointRefused(f"{field}: expected URL-safe base64")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise EndpointRefused(f"{field}: expected URL-safe base64") from None


def check_keys(subscription: WebPushSubscription) -> None:
    """The keys must be a P-256 public point and a 16-byte auth secret (RFC 8291)."""
    raw = _decode_b64url(subscription.keys.p256dh, "subscription.keys.p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise EndpointRefused(
            "subscription.keys.p256dh: expected an uncompressed P-256 public key"
        ) from None
    if len(raw) != 65:
        raise EndpointRefused("subscription.keys.p256dh: expected an uncompressed P-256 "
                              "public key (65 bytes)")
    if len(_decode_b64url(subscription.keys.auth, "subscription.keys.auth")) != 16:
        raise EndpointRefused("subscription.keys.auth: expected 16 bytes")


def parse_endpoint(endpoint: str, *, allow_private: bool) -> URL:
    """The endpoint's URL if its form is acceptable (scheme, host, no credentials)."""
    field = "subscription.endpoint"
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise EndpointRefused(f"{field}: at most {MAX_ENDPOINT_CHARS} characters")
    try:
        url = URL(endpoint)
        port = url.port
    except (ValueError, TypeError):
        raise EndpointRefused(f"{field}: not a URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if url.scheme not in schemes or not url.host or not url.is_absolute():
        raise EndpointRefused(f"{field}: must be an https URL")
    if url.user is not None or url.password is not None:
        raise EndpointRefused(f"{field}: must not carry credentials")
    if port is None or not 0 < port < 65536:
        raise EndpointRefused(f"{field}: bad port")
    return url


async def check_endpoint(
    endpoint: str, *, allow_private: bool, resolver: AbstractResolver | None = None
) -> None:
    """Refuse (``EndpointRefused``) an endpoint that is not https or whose host resolves
    to any non-public address; with ``allow_private`` only the URL's form is checked."""
    url = parse_endpoint(endpoint, allow_private=allow_private)
    if allow_private:
        return
    host = url.host
    assert host is not None and url.port is not None
    literal = _parse_ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        own = resolver is None
        active = resolver or aiohttp.ThreadedResolver()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = await active.resolve(host, url.port, socket.AF_UNSPEC)
        except (OSError, TimeoutError):
            raise EndpointRefused("subscription.endpoint: the host does not resolve") from None
        finally:
            if own:
                await active.close()
        addresses = [ip for ip in (_parse_ip(r["host"]) for r in found) if ip is not None]
        if not addresses:
            raise EndpointRefused("subscription.endpoint: the host does not resolve")
    if not all(address_is_public(ip) for ip in addresses):
        raise EndpointRefused(
            "subscription.endpoint: the host must resolve to public addresses only"
        )


async def check_subscription(
    subscription: WebPushSubscription, *, allow_private: bool,
    resolver: AbstractResolver | None = None,
) -> None:
    """Everything ``devices.register`` must check about a Web Push subscription."""
    check_keys(subscription)
    await check_endpoint(subscription.endpoint, allow_private=allow_private, resolver=resolver)


class PublicOnlyResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host with any non-public address."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            ip = _parse_ip(result["host"])
            if ip is None or not address_is_public(ip):
                raise RefusedAddress(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def public_socket_factory(addr_info: Any) -> socket.socket:
    """aiohttp ``socket_factory``: no socket to a non-public address, whatever named it."""
    family, type_, proto, _, sockaddr = addr_info
    ip = _parse_ip(str(sockaddr[0]).split("%", 1)[0])
    if ip is None or not address_is_public(ip):
        raise RefusedAddress("connection to a non-public address refused")
    return socket.socket(family, type_, proto)


def guarded_connector(
    *, allow_private: bool, resolver: AbstractResolver | None = None, limit: int = 100,
    limit_per_host: int = 20,
) -> aiohttp.TCPConnector:
    """The Web Push session's connector (create it inside the running loop)."""
    inner = resolver or aiohttp.ThreadedResolver()
    if allow_private:
        return aiohttp.TCPConnector(resolver=inner, limit=limit, limit_per_host=limit_per_host)
    return aiohttp.TCPConnector(
        resolver=PublicOnlyResolver(inner), socket_factory=public_socket_factory,
        limit=limit, limit_per_host=limit_per_host,
    )


def is_refusal(exc: BaseException) -> bool:
    """True when ``exc`` (an aiohttp connection error) came from this guard."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, RefusedAddress):
            return True
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, RefusedAddress):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
