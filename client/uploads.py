"""``upload()``: send an image to a PetSpark server, with retries and progress.

    async with aiohttp.ClientSession() as http:
        upload = await upload(http, "https://api.petspark.example", token,
                              Path("rex.jpg"), "pet_photo")
        print(upload["id"], upload["status"])

Files up to ``direct_max_bytes`` go through ``POST /api/v1/uploads`` in one
request; larger ones use the resumable multipart flow: the server hands out
one presigned URL per part, each part is PUT (and retried on its own), then
``/complete`` joins them. Retried: connection errors, timeouts, 5xx and 429
(honouring ``Retry-After``), with exponential backoff and full jitter. Not
retried: other 4xx, which ``UploadError`` reports with the server's code.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

Progress = Callable[[int, int], None]
DEFAULT_DIRECT_MAX = 10 * 1024 * 1024


class UploadError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class _Retry(Exception):
    def __init__(self, after_s: float | None) -> None:
        super().__init__("retry")
        self.after_s = after_s


async def _check(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    if resp.status == 429 or resp.status >= 500:
        after = resp.headers.get("Retry-After")
        raise _Retry(float(after) if after and after.isdigit() else None)
    try:
        body = await resp.json(content_type=None)
        error = body["error"]
        field = error.get("field")
        raise UploadError(resp.status, str(error["code"]), str(error["message"]),
                          field if isinstance(field, str) else None)
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        raise UploadError(resp.status, "unknown", await resp.text()) from None


async def _with_retry(attempts: int, call: Callable[[], Awaitable[Any]]) -> Any:
    for attempt in range(attempts):
        try:
            return await call()
        except (_Retry, aiohttp.ClientConnectionError, TimeoutError) as exc:
            if attempt == attempts - 1:
                if isinstance(exc, _Retry):
                    raise UploadError(503, "unavailable", "gave up after retries") from None
                raise
            delay = random.uniform(0, min(30.0, 0.5 * 2**attempt))
            if isinstance(exc, _Retry) and exc.after_s is not None:
                delay = max(delay, exc.after_s)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


async def upload(
    http: aiohttp.ClientSession,
    base_url: str,
    token: str,
    source: Path | bytes,
    purpose: str,
    *,
    content_type: str = "image/jpeg",
    direct_max_bytes: int = DEFAULT_DIRECT_MAX,
    attempts: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Upload ``source`` (a file or bytes); returns the server's ``upload`` object."""
    auth = {"Authorization": f"Bearer {token}"}
    if isinstance(source, Path):
        size = (await asyncio.to_thread(source.stat)).st_size
    else:
        size = len(source)
    api = base_url.rstrip("/") + "/api/v1/uploads"

    if size <= direct_max_bytes:
        async def send_direct() -> dict[str, Any]:
            form = aiohttp.FormData()
            form.add_field("purpose", purpose)
            if isinstance(source, Path):
                f = await asyncio.to_thread(source.open, "rb")
                with f:  # streamed by aiohttp, not read into memory
                    form.add_field("file", f, filename=source.name, content_type=content_type)
                    async with http.post(api, data=form, headers=auth) as resp:
                        await _check(resp)
                        body: dict[str, Any] = await resp.json()
            else:
                form.add_field("file", source, filename="upload", content_type=content_type)
                async with http.post(api, data=form, headers=auth) as resp:
                    await _check(resp)
                    body = await resp.json()
            if progress:
                progress(size, size)
            return dict(body["upload"])

        result: dict[str, Any] = await _with_retry(attempts, send_direct)
        return result

    async def start() -> dict[str, Any]:
        async with http.post(api + "/multipart", headers=auth, json={
            "content_type": content_type, "size": size, "purpose": purpose,
        }) as resp:
            await _check(resp)
            body: dict[str, Any] = await resp.json()
            return body

    started = await _with_retry(attempts, start)
    done: list[dict[str, Any]] = []
    sent = 0
    offset = 0
    for part in started["parts"]:
        part_offset, part_size = offset, int(part["size"])
        offset += part_size
        url = urljoin(base_url.rstrip("/") + "/", part["url"])

        async def put(url: str = url, part_offset: int = part_offset,
                      part_size: int = part_size) -> str:
            if isinstance(source, Path):
                chunk = await asyncio.to_thread(_read, source, part_offset, part_size)
            else:
                chunk = source[part_offset : part_offset + part_size]
            async with http.put(url, data=chunk) as resp:
                await _check(resp)
                return str(resp.headers["ETag"])

        etag = await _with_retry(attempts, put)
        done.append({"part_number": part["part_number"], "etag": etag})
        sent += part_size
        if progress:
            progress(sent, size)

    async def complete() -> dict[str, Any]:
        async with http.post(f"{api}/{started['upload_id']}/complete", headers=auth,
                             json={"parts": done}) as resp:
            await _check(resp)
            body: dict[str, Any] = await resp.json()
            return dict(body["upload"])

    completed: dict[str, Any] = await _with_retry(attempts, complete)
    return completed
