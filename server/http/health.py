"""Liveness, readiness and metrics.

``GET /metrics`` is protected (docs/protocol.md "Operations: /metrics"): with
``METRICS_TOKEN`` set it needs ``Authorization: Bearer <token>`` (else 401, in every
environment); without one it is open in development and, in production, answered exactly
like an unknown route (404), so a public listener never shows it.
"""

from __future__ import annotations

import asyncio
import hmac

import msgspec
from aiohttp import web

from protocol.health import Health, Readiness
from server.errors import Unauthorized
from server.resources.postgres import ping as ping_db
from server.state import METRICS, RUNTIME, SETTINGS


def _json(value: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(value), status=status,
                        content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json(Health())


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[RUNTIME].deps
    checks = {
        "database": ping_db(deps.db),
        "broker": deps.node.broker.ping(),
        "storage": deps.storage.check(),
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, timeout=3)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready": say which and why
            results[name] = f"failed: {type(exc).__name__}"
    if not request.app[RUNTIME].gateway.accepting:
        results["gateway"] = "draining"  # shutting down: take this node out of rotation
    ready = all(v == "ok" for v in results.values())
    return _json(Readiness(status="ready" if ready else "unavailable", checks=results),
                 status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    token = settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("metrics: send Authorization: Bearer <METRICS_TOKEN>")
    elif settings.is_production:
        raise web.HTTPNotFound()  # the same answer as an unknown route
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
