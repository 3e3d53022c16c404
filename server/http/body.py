"""Reading request bodies: every read is bounded in time, and a malformed multipart body
is a 400, never a 500.

- ``HTTP_BODY_TIMEOUT_S``: the longest a route waits for the *next* bytes of a body (as
  nginx's ``client_body_timeout``: between two reads, not for the whole body, so a slow
  but steady upload is fine). Past it the answer is 408 and the connection is closed.
- ``FormReader`` wraps aiohttp's multipart reader for ``multipart/form-data`` routes (the
  direct upload and the local store's presigned form): a missing, empty or wrong
  boundary, a body that ends before its closing boundary, a JSON body sent under a
  multipart type, unreadable part headers or a nested multipart are all
  ``BadRequest("form: …")``.
- A client that goes away mid-body raises ``ConnectionResetError`` out of these reads; the
  middleware logs one line for it (``server.http.middleware``), no traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from server.errors import BadRequest
from server.state import SETTINGS

T = TypeVar("T")

_MALFORMED = (ValueError, AssertionError, LookupError, HttpProcessingError)
"""What aiohttp's multipart reader raises for a body that is not the form it says."""


class BodyTimeout(web.HTTPRequestTimeout):
    """No body bytes for ``HTTP_BODY_TIMEOUT_S``: 408, and the connection is closed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(reason=f"request body: no data for {seconds:g} s")


async def timed(request: web.Request, read: Awaitable[T]) -> T:
    """One body read, bounded by ``HTTP_BODY_TIMEOUT_S``."""
    seconds = request.app[SETTINGS].http_body_timeout_s
    try:
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise BodyTimeout(seconds) from None


async def stream(request: web.Request, chunk_bytes: int) -> AsyncIterator[bytes]:
    """The raw body in chunks, each read bounded in time."""
    while chunk := await timed(request, request.content.read(chunk_bytes)):
        yield chunk


def malformed(exc: BaseException) -> BadRequest:
    return BadRequest("form: malformed multipart/form-data body")


class FormReader:
    """The parts of a ``multipart/form-data`` body, one at a time."""

    def __init__(self, request: web.Request, reader: MultipartReader) -> None:
        self._request = request
        self._reader = reader

    @classmethod
    async def open(cls, request: web.Request) -> FormReader:
        try:
            reader = await request.multipart()
        except _MALFORMED as exc:
            raise malformed(exc) from None
        return cls(request, reader)

    async def next(self) -> BodyPartReader | None:
        """The next part, or None after the closing boundary."""
        try:
            part = await timed(self._request, self._reader.next())
        except _MALFORMED as exc:
            raise malformed(exc) from None
        if part is not None and not isinstance(part, BodyPartReader):
            raise BadRequest("form: nested multipart is not accepted")
        return part

    async def chunk(self, part: BodyPartReader, size: int) -> bytes:
        """Up to ``size`` bytes of a part's content (b"" at its end)."""
        try:
            return await timed(self._request, part.read_chunk(size))
        except _MALFORMED as exc:
            raise malformed(exc) from None

    async def chunks(self, part: BodyPartReader, size: int) -> AsyncIterator[bytes]:
        while chunk := await self.chunk(part, size):
            yield chunk

    async def small_field(self, part: BodyPartReader, limit: int) -> str:
        """A text field of at most ``limit`` bytes (UTF-8; ``BadRequest`` when longer)."""
        value = await self.chunk(part, limit + 1)
        if len(value) > limit or await self.chunk(part, 1):
            raise BadRequest(f"{part.name}: too long")
        return value.decode("utf-8", "replace")

    async def finish(self) -> None:
        """Read to the closing boundary: a body cut short is malformed, not accepted."""
        while (part := await self.next()) is not None:
            async for _ in self.chunks(part, 64 * 1024):
                pass
