"""Access tokens with a chosen lifetime, signed by the app's real token issuer."""

from __future__ import annotations

from aiohttp import web

from server.state import RUNTIME
from tests.support.auth import Registered


def short_lived_token(app: web.Application, user: Registered, ttl_s: int = 1) -> str:
    tokens = app[RUNTIME].auth.tokens
    claims = tokens.verify(user.access_token)
    token, _ = tokens.issue(user_id=claims.sub, role=claims.role, session_id=claims.sid,
                            ttl_s=ttl_s)
    return token
