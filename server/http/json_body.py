"""``decode_json_body(request, Type)``: a JSON request body as a typed Struct, or a kernel error.

- 415 ``unsupported_media_type`` unless the Content-Type is JSON
  (``application/json`` or ``…+json``);
- 413 ``too_large`` when the body exceeds MAX_REQUEST_BYTES (checked on the
  declared length first, then while reading, so a chunked body is bounded too);
- 408 when no body bytes arrive for ``HTTP_BODY_TIMEOUT_S`` (``server.http.body``);
- 400 ``bad_request`` naming the field (``email: required``,
  ``password: expected str, got int``; ``field`` is its path) or ``invalid JSON``. Every
  field error is 400 over HTTP, also an over-long text: 413 is kept for the body's size.

``allow_empty=True`` (bodies whose fields are all optional, like logout) turns a
missing body into the Struct's defaults.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from protocol.codec import JSON, DecodeError
from server.errors import AppError, BadRequest, TooLarge, UnsupportedMediaType
from server.http.body import stream
from server.state import SETTINGS

T = TypeVar("T")


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _too_large(limit: int) -> AppError:
    return TooLarge(f"request body: at most {limit} bytes")


async def decode_json_body(request: web.Request, type_: type[T], *, allow_empty: bool = False) -> T:
    limit = request.app[SETTINGS].max_request_bytes
    if not request.body_exists:
        if allow_empty:
            return JSON.decode_result(b"{}", type_)
        raise BadRequest("body: expected a JSON object")
    if not is_json(request.content_type):
        raise UnsupportedMediaType("expected Content-Type: application/json")
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    # Read here rather than request.read(): every read is bounded in time
    # (HTTP_BODY_TIMEOUT_S), and the size on the way in, chunked bodies included.
    async for chunk in stream(request, 16 * 1024):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip() and allow_empty:
        return JSON.decode_result(b"{}", type_)
    try:
        return JSON.decode_result(body, type_)
    except DecodeError as exc:
        raise BadRequest(exc.message, field=exc.field) from None
