"""The local store's signed endpoints: what S3 does for clients when objects live on disk.

Registered only when ``S3_BUCKET`` is unset. No session or token is needed:
the signature (made by ``LocalStorage`` with a key derived from SECRET_KEY) is
the credential, exactly like an S3 presigned URL, and it expires.

- ``GET  /api/v1/files/{key}?exp&sig`` — download (``Storage.download_url``).
- ``POST /api/v1/files`` — multipart form ``key``, ``policy``, ``signature``,
  then ``file`` last (``Storage.presigned_post``); 204 when stored.
- ``PUT  /api/v1/files/{key}?upload_id&part&size&exp&sig`` — one part of a
  multipart upload (``Storage.part_url``); 200 with the part's ``ETag``.

A form of an upload that was already completed (or discarded) is spent: 403 ``forbidden``
before any byte of the file is stored. A malformed multipart body, or one cut short
before its closing boundary, is 400 and stores nothing (``server.http.body``).
A bad, tampered or expired signature is 403 ``forbidden``; a body larger than
signed is 413 ``too_large``.
"""

from __future__ import annotations

from aiohttp import web

from server.errors import AppError, BadRequest, Forbidden, NotFound, TooLarge, UnsupportedMediaType
from server.http.body import FormReader, stream
from server.resources.storage import (
    CHUNK_BYTES,
    BadSignature,
    LocalStorage,
    ObjectNotFound,
    StorageError,
)
from server.state import RUNTIME

_FORM_FIELD_MAX = 8192


def _local(request: web.Request) -> LocalStorage:
    storage = request.app[RUNTIME].deps.storage
    assert isinstance(storage, LocalStorage)
    return storage


def _forbidden(exc: BadSignature) -> AppError:
    return Forbidden(f"signature: {exc}")


def _query(request: web.Request, *names: str) -> list[str]:
    try:
        return [request.query[n] for n in names]
    except KeyError as exc:
        raise Forbidden(f"signature: missing {exc.args[0]}") from None


async def download(request: web.Request) -> web.StreamResponse:
    storage = _local(request)
    key = request.match_info["key"]
    exp, sig = _query(request, "exp", "sig")
    try:
        path = storage.verify_download(key, exp, sig)
    except BadSignature as exc:
        raise _forbidden(exc) from None
    except StorageError:
        raise NotFound("file: not found") from None
    if not path.is_file():
        raise NotFound("file: not found")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": storage.content_type_of(key),
            "Cache-Control": "private, max-age=60",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def post_form(request: web.Request) -> web.Response:
    storage = _local(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("expected multipart/form-data")
    form = await FormReader.open(request)
    fields: dict[str, str] = {}
    while True:
        part = await form.next()
        if part is None:
            raise BadRequest("file: missing")
        if part.name is None:
            raise BadRequest("form: unexpected part")
        if part.name != "file":
            fields[part.name] = await form.small_field(part, _FORM_FIELD_MAX)
            continue
        # As with S3, the file comes last and the policy is checked before its bytes are read.
        try:
            policy = storage.verify_post_policy(
                fields.get("policy", ""), fields.get("signature", "")
            )
        except BadSignature as exc:
            raise _forbidden(exc) from None
        except (StorageError, KeyError, TypeError):
            raise Forbidden("signature: malformed policy") from None
        if fields.get("key") != policy["key"]:
            raise Forbidden("key: does not match the policy")
        if not await request.app[RUNTIME].uploads.accepts_upload(policy["key"]):
            # The upload was completed (or discarded): its form is spent.
            raise Forbidden("form: already used; the upload is complete")
        try:
            size = await storage.write_object(
                policy["key"], form.chunks(part, CHUNK_BYTES), int(policy["max_size"])
            )
        except StorageError:
            raise TooLarge(f"file: larger than the {policy['max_size']} bytes signed"
            ) from None
        try:
            if size == 0:
                raise BadRequest("file: empty")
            await form.finish()  # a body cut short before its closing boundary is refused
        except BaseException:
            await storage.delete(policy["key"])
            raise
        return web.Response(status=204)


async def put_part(request: web.Request) -> web.Response:
    storage = _local(request)
    key = request.match_info["key"]
    upload_id, number, size, exp, sig = _query(request, "upload_id", "part", "size", "exp", "sig")
    try:
        part_number, part_size = storage.verify_part(key, upload_id, number, size, exp, sig)
    except BadSignature as exc:
        raise _forbidden(exc) from None
    except (StorageError, ValueError):
        raise Forbidden("signature: malformed") from None
    if request.content_length is not None and request.content_length != part_size:
        raise BadRequest(f"part: expected exactly {part_size} bytes")
    try:
        etag = await storage.write_part(
            upload_id, part_number, stream(request, CHUNK_BYTES), part_size
        )
    except ObjectNotFound:
        raise NotFound("multipart upload: not found") from None
    except StorageError as exc:
        raise BadRequest(f"part: {exc}") from None
    return web.Response(status=200, headers={"ETag": etag})


def add_routes(app: web.Application) -> None:
    route = LocalStorage.route
    app.router.add_get(route + "/{key:.+}", download, allow_head=False)
    app.router.add_put(route + "/{key:.+}", put_part)
    app.router.add_post(route, post_form)
