"""PetSpark realtime protocol v1: the executable form of the wire contract.

Pure msgspec + stdlib. What the gateway needs::

    from protocol import (
        CODECS, JSON, MSGPACK, negotiate, DecodeError,      # codecs
        ClientMessage, ServerMessage, COMMANDS,             # catalogue
        Command, Hello, Pong, Ack, Welcome, Ping, Ok, Error,
        ErrorCode, CloseCode, encode_event,
    )

    codec = negotiate(offered)                 # per connection
    msg = codec.decode_client(frame)           # raises DecodeError(message, id, code)
    result_type = type(msg).result_type        # if isinstance(msg, Command)
    codec.encode(Ok(id=msg.id, result=result_type(...)))

The full catalogue is in ``docs/protocol.md``.
"""

from protocol.base import Command, DurableEvent, Empty, Event, Message, Result
from protocol.codec import (
    CODECS,
    JSON,
    MSGPACK,
    SUBPROTOCOLS,
    Codec,
    DecodeError,
    EncodedEvent,
    decode_stored_event,
    encode_event,
    encode_result,
    negotiate,
)
from protocol.codes import HTTP_STATUS, CloseCode, ErrorCode, should_reconnect
from protocol.messages import (
    COMMANDS,
    DURABLE_EVENTS,
    EPHEMERAL_EVENTS,
    EVENTS,
    NOT_YET_IMPLEMENTED,
    AnyCommand,
    AnyEvent,
    ClientMessage,
    ServerMessage,
)
from protocol.session import (
    Ack,
    AuthRefresh,
    AuthRefreshResult,
    Error,
    Hello,
    Ok,
    Ping,
    Pong,
    Welcome,
)
from protocol.types import Location, utc_now

__all__ = [
    "CODECS",
    "COMMANDS",
    "DURABLE_EVENTS",
    "EPHEMERAL_EVENTS",
    "EVENTS",
    "HTTP_STATUS",
    "JSON",
    "MSGPACK",
    "NOT_YET_IMPLEMENTED",
    "SUBPROTOCOLS",
    "Ack",
    "AnyCommand",
    "AnyEvent",
    "AuthRefresh",
    "AuthRefreshResult",
    "ClientMessage",
    "CloseCode",
    "Codec",
    "Command",
    "DecodeError",
    "DurableEvent",
    "Empty",
    "EncodedEvent",
    "Error",
    "ErrorCode",
    "Event",
    "Hello",
    "Location",
    "Message",
    "Ok",
    "Ping",
    "Pong",
    "Result",
    "ServerMessage",
    "Welcome",
    "decode_stored_event",
    "encode_event",
    "encode_result",
    "negotiate",
    "should_reconnect",
    "utc_now",
]
