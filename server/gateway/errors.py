"""The socket edge's error mappers: a reply ``error`` for a command, a close for a refusal.

A command's ``AppError`` becomes ``error {id, code, message, retry_after_s?, field?}`` and
the connection stays (PROTOCOL §4); ``field`` is set when the error names one of the
command's fields (``AppError.field_in``); a backend that cannot be reached
(``server.resources.outages``) is ``unavailable`` with ``retry_after_s``, logged once per
outage, not per command; anything else is a bug: logged once with the connection's id
(never the payload) and answered ``internal``. A credential refused during the
handshake closes the socket with the error's close code (4001, 4003).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from protocol.codes import CloseCode, ErrorCode
from protocol.session import Error
from server.errors import AppError
from server.resources.outages import Outages

log = logging.getLogger("server.gateway")

INTERNAL_MESSAGE = "internal error"


def error_reply(command_id: str | None, exc: Exception, outages: Outages | None = None, *,
                fields: Collection[str] = (), **context: object) -> Error:
    """The ``error`` reply for a command that raised ``exc``; ``fields`` are the command's
    field names; ``context`` (command tag, user id) goes into the log line of an
    unexpected error."""
    if not isinstance(exc, AppError) and outages is not None:
        exc = outages.unavailable(exc) or exc
    if isinstance(exc, AppError):
        retry = None if exc.retry_after_s is None else round(exc.retry_after_s, 3)
        return Error(id=command_id, code=exc.code, message=exc.message, retry_after_s=retry,
                     field=exc.field_in(fields))
    log.error("command failed", exc_info=exc, extra={"command_id": command_id, **context})
    return Error(id=command_id, code=ErrorCode.INTERNAL, message=INTERNAL_MESSAGE)


def close_for(exc: AppError) -> tuple[CloseCode, str]:
    """How a socket whose credential was refused is closed."""
    return exc.close_code or CloseCode.NOT_AUTHENTICATED, exc.message
