"""Middlewares every HTTP route passes through: request id, metrics, errors as JSON.

Errors raised by handlers (``server.errors.AppError``) are mapped here, in one place
(``server.http.errors.response_for``), so handlers let them propagate. A backend outage
(``server.resources.outages``) is 503 ``unavailable`` with ``Retry-After``, logged once per
outage rather than once per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from server.auth.sessions import clear_if_stale
from server.errors import AppError
from server.http.contracts import request_fields
from server.http.errors import error_response, from_http_exception, response_for
from server.observability.logging import request_id
from server.state import METRICS, RUNTIME, SESSION_COOKIES

log = logging.getLogger("server.http")


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except AppError as exc:
            response = response_for(exc, request_fields(request.method, _route_name(request)))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = from_http_exception(exc)
            if exc.status == 408:
                response.force_close()  # the rest of the body may still be on its way
        except asyncio.CancelledError:
            transport = request.transport
            if transport is None or transport.is_closing():
                # aiohttp cancels the handler of a request whose client disconnected.
                status = 499
                log.info("client went away mid-request", extra={"path": _short(request.path)})
            raise
        except ConnectionResetError:
            # The client went away mid-request (mostly mid-body): nothing to answer, and
            # not a bug — one line, no traceback. 499 as nginx counts it.
            log.info("client went away mid-request", extra={"path": _short(request.path)})
            response = error_response(499, "bad_request", "client went away")
        except Exception as exc:
            unavailable = _outage(request, exc)
            if unavailable is not None:  # a backend is down: 503, logged once per outage
                response = response_for(unavailable)
            else:
                log.exception("unhandled error", extra={"path": _short(request.path)})
                response = error_response(500, "internal", "internal error")
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
            clear_if_stale(request, response, request.app[SESSION_COOKIES])
        return response
    finally:
        metrics = request.app[METRICS]
        route = _route_name(request)
        metrics.http_requests.labels(route, request.method, str(status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
        _access_log(request, status, started)
        request_id.reset(token)


def _outage(request: web.Request, exc: Exception) -> AppError | None:
    runtime = request.app.get(RUNTIME)
    return None if runtime is None else runtime.deps.outages.unavailable(exc)


def _short(path: str) -> str:
    return path if len(path) <= 256 else path[:256] + "…"


def _access_log(request: web.Request, status: int, started: float) -> None:
    """One info line per request (inside the request id's context, which the formatter
    adds). The path only: query strings may carry signatures. A WebSocket upgrade is
    logged when its socket closes (status 101, ms = the socket's lifetime)."""
    if not log.isEnabledFor(logging.INFO):
        return
    ms = round((time.perf_counter() - started) * 1000, 1)
    path = _short(request.path)
    log.info(f"{request.method} {path} {status} {ms} ms",
             extra={"method": request.method, "path": path, "status": status, "ms": ms})
