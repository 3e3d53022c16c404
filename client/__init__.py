"""PetSpark's Python reference client for the realtime protocol (``docs/protocol.md``).

::

    from client import Client
    from protocol.chat import ChatSend

    async with Client("ws://127.0.0.1:8080/ws", token=access_token) as c:
        result = await c.command(
            ChatSend(id="", conversation_id=conv, client_msg_id=str(uuid4()), body="hi")
        )
        async for event in c.events():
            ...

Modules: ``client`` (the ``Client``), ``connection`` (one socket: upgrade,
hello/welcome, frames), ``close_policy`` (what each close code means for
reconnecting), ``backoff`` (full-jitter delays), ``credentials`` (header,
hello or cookie auth), ``pending`` (unanswered commands and resending),
``events`` (``Resync``), ``errors``. HTTP helpers live apart from the socket
client: ``uploads`` (``upload()``, direct or multipart, with retries). A complete
program: ``examples/match_and_chat.py``.
"""

from client.backoff import Backoff
from client.client import Client, ClientState
from client.close_policy import Action, Plan, plan_after_close
from client.credentials import AuthMode, Credentials, TokenProvider
from client.errors import (
    ERROR_CLASSES,
    BadRequest,
    ClientError,
    CommandError,
    CommandTimeout,
    Conflict,
    ConnectionClosed,
    ConnectionLost,
    Forbidden,
    HandshakeRejected,
    InternalServerError,
    InvalidReply,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from client.events import ClientEvent, Resync

__all__ = [
    "ERROR_CLASSES",
    "Action",
    "AuthMode",
    "Backoff",
    "BadRequest",
    "Client",
    "ClientError",
    "ClientEvent",
    "ClientState",
    "CommandError",
    "CommandTimeout",
    "Conflict",
    "ConnectionClosed",
    "ConnectionLost",
    "Credentials",
    "Forbidden",
    "HandshakeRejected",
    "InternalServerError",
    "InvalidReply",
    "MethodNotAllowed",
    "NotFound",
    "Plan",
    "RateLimited",
    "Resync",
    "TokenProvider",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "plan_after_close",
]
