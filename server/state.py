"""Every ``AppKey`` the app holds, in one place, and the started ``Runtime`` they lead to.

``create_app`` sets the first four before start-up; the composition root's start-up
context sets ``RUNTIME`` once every resource and service exists. The edges (HTTP routes,
the ``/ws`` route) read what they need from it; domain code never sees the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from server.auth.account import AccountService
from server.auth.service import AuthService
from server.auth.sessions import SessionCookies
from server.auth.verifier import Verifier
from server.commands import CommandTable
from server.deps import Deps
from server.domain.uploads.service import UploadService
from server.observability.metrics import Metrics
from server.settings import Settings


class SocketEndpoint(Protocol):
    """The gateway as the app sees it (``server.gateway.gateway.Gateway``)."""

    @property
    def accepting(self) -> bool:
        """False once the node drains for shutdown (no new upgrades)."""

    async def handle(self, request: web.Request) -> web.StreamResponse: ...

    async def drain(self) -> None: ...

    async def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """What start-up built: the bundle, the services the edges call, the gateway."""

    deps: Deps
    verifier: Verifier
    auth: AuthService
    account: AccountService
    uploads: UploadService
    commands: CommandTable
    """Command class → handler, with every area's service bound (``commands.service(T)``)."""
    gateway: SocketEndpoint


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
BACKENDS = web.AppKey("backends", dict[str, str])
"""What each backend is (``database: embedded PostgreSQL at …``), for logs and start-up."""
SESSION_COOKIES = web.AppKey("session_cookies", SessionCookies)
RUNTIME = web.AppKey("runtime", Runtime)
