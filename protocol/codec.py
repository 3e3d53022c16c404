"""The two sub-protocols' codecs, built once at import.

``petspark.v1.json`` carries UTF-8 JSON in text frames; ``petspark.v1.msgpack``
carries MessagePack in binary frames. Both carry the same messages with the
same shapes: in particular times are RFC 3339 strings in both (MessagePack's
timestamp extension is accepted on decode but never sent).

Decoding is the only place where bytes become messages; every failure raises
``DecodeError`` with a message that names the field and the command's ``id``
when one could be read, so the gateway can reply ``error`` with that id and keep
the connection open.

Two rules hold here for every message, so no command has to repeat them:

- No text contains a NUL character (U+0000): PostgreSQL cannot store one, so it is
  refused at decode (``body: must not contain NUL characters``), in any string field,
  list item, object key or nested object, on both sub-protocols and in HTTP bodies.
- A value echoed back in an error (an unknown ``type``, an invalid enum value) is at most
  ``ECHO_MAX`` characters, non-printable characters shown as ``?``: an error is never a
  way to reflect a 64 KiB payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import msgspec

from protocol.base import Event, Result
from protocol.codes import ErrorCode, leading_field
from protocol.messages import COMMANDS, AnyEvent, ClientMessage, ServerMessage
from protocol.types import Id

__all__ = [
    "CODECS",
    "JSON",
    "MSGPACK",
    "SUBPROTOCOLS",
    "Codec",
    "DecodeError",
    "EncodedEvent",
    "decode_stored_event",
    "encode_event",
    "encode_result",
    "negotiate",
]

T = TypeVar("T")


class DecodeError(ValueError):
    """A frame that is not a valid message.

    ``message`` names the offending field first (``"body: expected str, got int"``,
    ``"location.lat: expected ≤ 90"``, ``"unknown type 'foo'"``, ``"invalid JSON"``,
    ``"nested too deeply"``). Decoding raises nothing else, whatever the input.
    ``id`` is the command id if one could be read from the frame, else None.
    ``code`` is the error code to answer: ``too_large`` for a text or list over
    its length limit, ``bad_request`` for everything else.
    ``field`` is the path of the field at fault (``body``, ``location.lat``,
    ``user_ids[1]``, ``type`` for an unknown type), or None when the frame as a whole
    is bad (``invalid JSON``, ``expected object, got array``).
    """

    def __init__(
        self,
        message: str,
        id: str | None = None,
        code: ErrorCode = ErrorCode.BAD_REQUEST,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.id = id
        self.code = code
        self.field = field

    def __repr__(self) -> str:
        return (f"DecodeError({self.message!r}, id={self.id!r}, code={self.code.value!r}, "
                f"field={self.field!r})")


class _IdOnly(msgspec.Struct):
    """Lenient view of a frame used only to recover the ``id`` of an invalid command."""

    id: Any = None


_AT_PATH = re.compile(r"^(?P<text>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_AT_KEY = re.compile(r"^(?P<text>.*) - at `key` in `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_BAD_TAG = re.compile(r"^Invalid value (?P<value>.+)$", re.DOTALL)
_TOO_LONG = re.compile(r"^Expected `(?P<kind>str|array|object)` of length <= (?P<n>\d+)$")
_TOO_SHORT = re.compile(r"^Expected `(?P<kind>str|array|object)` of length >= (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `\w+` (?P<op><=|>=|<|>) (?P<n>\S+)$")
_WHOLE_FLOAT = re.compile(r"(?<![\d.])(-?\d+)\.0(?![\d])")
_QUOTED = re.compile(r"'(?P<value>.*)'", re.DOTALL)
_UNITS = {"str": "character", "array": "item", "object": "key"}
ECHO_MAX = 40
"""The most characters of a client's value an error message repeats."""
NUL_MESSAGE = "must not contain NUL characters"


def _echo(value: str) -> str:
    """A client's value as an error may show it: bounded, printable."""
    shown = "".join(c if c.isprintable() else "?" for c in value[:ECHO_MAX])
    return f"'{shown}…'" if len(value) > ECHO_MAX else f"'{shown}'"


def _bounded(text: str) -> str:
    m = _QUOTED.search(text)
    if m is None:
        return text
    return text[: m.start()] + _echo(m["value"]) + text[m.end():]


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first text holding a NUL inside a decoded value, else None."""
    if isinstance(value, str):
        return (path or "value") if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        for attr, wire in zip(value.__struct_fields__, value.__struct_encode_fields__,
                              strict=True):
            found = _nul_path(getattr(value, attr), f"{path}.{wire}" if path else wire)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path}: keys" if path else "keys"
            found = _nul_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    return None
_OPS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


def _count(n: str, kind: str) -> str:
    unit = _UNITS[kind]
    return f"{n} {unit}" if n == "1" else f"{n} {unit}s"


def _describe(error: msgspec.ValidationError) -> tuple[str, ErrorCode, str | None]:
    """Turn msgspec's ``"Expected … - at `$.a.b`"`` into ``"a.b: expected …"``, its
    error code and the field path (``a.b``; None for the whole frame)."""
    text, path = str(error), ""
    if m := _AT_KEY.match(text):
        path = m["path"].lstrip(".")
        message = (f"{path}: " if path else "") + "object keys must be strings"
        return message, ErrorCode.BAD_REQUEST, _field(path)
    if m := _AT_PATH.match(text):
        text, path = m["text"], m["path"].lstrip(".")
    if m := _MISSING.match(text):
        field = f"{path}.{m['field']}" if path else m["field"]
        return f"{field}: required", ErrorCode.BAD_REQUEST, _field(field)
    if path == "type" and (m := _BAD_TAG.match(text)):
        return _bounded(f"unknown type {m['value']}"), ErrorCode.BAD_REQUEST, "type"
    code = ErrorCode.BAD_REQUEST
    if m := _TOO_LONG.match(text):
        text, code = f"at most {_count(m['n'], m['kind'])}", ErrorCode.TOO_LARGE
    elif m := _TOO_SHORT.match(text):
        text = f"at least {_count(m['n'], m['kind'])}"
    elif m := _BOUND.match(text):
        text = _WHOLE_FLOAT.sub(r"\1", f"expected {_OPS[m['op']]} {m['n']}")
    else:
        text = text.replace("`", "").replace(" <= ", " ≤ ").replace(" >= ", " ≥ ")
        text = _WHOLE_FLOAT.sub(r"\1", text)
        text = text[:1].lower() + text[1:]
    text = _bounded(text)
    if ": " in text and not path:
        # __post_init__ errors already start with their field ("ids: …").
        return text, code, leading_field(text)
    return (f"{path}: {text}" if path else text), code, _field(path)


def _field(path: str) -> str | None:
    return path[:256] or None


def _valid_id(value: object) -> str | None:
    if isinstance(value, str) and 1 <= len(value) <= 64:
        return value
    return None


class Codec:
    """Encoder and decoders of one sub-protocol, built once and shared by every
    connection (never build one per connection)."""

    def __init__(
        self,
        *,
        name: str,
        binary: bool,
        media_type: str,
        encode: Callable[[Any], bytes],
        decoder: Callable[[Any], Any],
        malformed: str,
    ) -> None:
        self.name = name
        """The WebSocket sub-protocol name."""
        self.binary = binary
        """True if messages travel in binary frames, False for text frames."""
        self.media_type = media_type
        self._encode = encode
        self._make_decoder = decoder
        self._malformed = malformed
        # Cheap test on the raw bytes: only a frame that could hold a NUL in a text is
        # walked (JSON must escape it as \u0000; MessagePack has it raw).
        self._nul_marker = b"\x00" if binary else b"\\u0000"
        self._client = decoder(ClientMessage)
        self._server = decoder(ServerMessage)
        self._event = decoder(AnyEvent)
        self._id_only = decoder(_IdOnly)
        self._results: dict[type[Any], Any] = {}
        for command in COMMANDS.values():
            self._result_decoder(command.result_type)

    def __repr__(self) -> str:
        return f"<Codec {self.name}>"

    def frame_kind_ok(self, is_binary: bool) -> bool:
        """Whether a frame of this kind belongs on this sub-protocol. The gateway
        answers a wrong kind ``bad_request`` (id null) without decoding it."""
        return is_binary == self.binary

    def encode(self, msg: msgspec.Struct) -> bytes:
        """Encode a message (or any Struct payload) for the wire. For JSON the bytes
        are UTF-8 text: send them as a text frame (aiohttp: ``send_frame(data,
        WSMsgType.TEXT)`` or ``send_str(data.decode())``)."""
        return self._encode(msg)

    def decode_client(self, data: bytes | str) -> ClientMessage:
        """Decode and validate a client → server frame, or raise ``DecodeError``."""
        return cast("ClientMessage", self._decode(self._client, data))

    def decode_server(self, data: bytes | str) -> ServerMessage:
        """Decode and validate a server → client frame (clients), or raise ``DecodeError``."""
        return cast("ServerMessage", self._decode(self._server, data))

    def decode_event(self, data: bytes | str) -> AnyEvent:
        """Decode a bare event (e.g. one stored in the database), or raise ``DecodeError``."""
        return cast("AnyEvent", self._decode(self._event, data))

    def decode_result(self, raw: msgspec.Raw | bytes, result_type: type[T]) -> T:
        """Decode ``ok.result`` (as received by ``decode_server``) into the command's
        ``result_type``. Raises ``DecodeError`` if it does not fit."""
        return cast(T, self._decode(self._result_decoder(result_type), raw))

    def _result_decoder(self, result_type: type[Any]) -> Any:
        decoder = self._results.get(result_type)
        if decoder is None:
            decoder = self._results[result_type] = self._make_decoder(result_type)
        return decoder

    def _decode(self, decoder: Any, data: bytes | str | msgspec.Raw) -> object:
        if isinstance(data, str) and self.binary:
            raise DecodeError(f"{self.name} takes binary frames, got text")
        try:
            value = decoder.decode(data)
        except msgspec.ValidationError as error:
            message, code, field = _describe(error)
            raise DecodeError(message, self._recover_id(data), code, field) from None
        except (msgspec.DecodeError, UnicodeError):
            # msgspec raises UnicodeDecodeError for invalid UTF-8 inside JSON strings.
            raise DecodeError(self._malformed) from None
        except RecursionError:
            raise DecodeError("nested too deeply") from None
        if self._may_hold_nul(data):
            where = _nul_path(value, "")
            if where is not None:
                recovered = self._recover_id(data)
                if recovered is not None and "\x00" in recovered:
                    recovered = None
                raise DecodeError(f"{where}: {NUL_MESSAGE}", recovered)
        return value

    def _may_hold_nul(self, data: bytes | str | msgspec.Raw) -> bool:
        if isinstance(data, str):
            return self._nul_marker.decode() in data
        if isinstance(data, msgspec.Raw):
            return self._nul_marker in bytes(data)
        return self._nul_marker in data

    def _recover_id(self, data: bytes | str | msgspec.Raw) -> Id | None:
        try:
            return _valid_id(self._id_only.decode(data).id)
        except (msgspec.MsgspecError, UnicodeError, RecursionError):
            return None


def _json_decoder(tp: Any) -> Any:
    return msgspec.json.Decoder(tp)


def _msgpack_decoder(tp: Any) -> Any:
    return msgspec.msgpack.Decoder(tp)


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def _msgpack_encode(msg: Any) -> bytes:
    # to_builtins first so that datetimes become RFC 3339 strings, as on JSON,
    # instead of MessagePack timestamp extensions.
    return _msgpack_encoder.encode(msgspec.to_builtins(msg))


JSON = Codec(
    name="petspark.v1.json",
    binary=False,
    media_type="application/json",
    encode=_json_encoder.encode,
    decoder=_json_decoder,
    malformed="invalid JSON",
)
"""The ``petspark.v1.json`` codec (the default)."""

MSGPACK = Codec(
    name="petspark.v1.msgpack",
    binary=True,
    media_type="application/msgpack",
    encode=_msgpack_encode,
    decoder=_msgpack_decoder,
    malformed="invalid MessagePack",
)
"""The ``petspark.v1.msgpack`` codec."""

CODECS: dict[str, Codec] = {JSON.name: JSON, MSGPACK.name: MSGPACK}
"""Sub-protocol name → codec, in the server's order of preference."""

SUBPROTOCOLS: tuple[str, ...] = tuple(CODECS)
"""The sub-protocol names to offer in the WebSocket handshake."""


def negotiate(offered: Iterable[str]) -> Codec:
    """The codec for a client's ``Sec-WebSocket-Protocol`` offer: the first offered
    name the server knows, in the client's order; JSON when none is known (the
    server then selects no sub-protocol in its handshake answer)."""
    for name in offered:
        codec = CODECS.get(name.strip())
        if codec is not None:
            return codec
    return JSON


EncodedEvent = dict[str, bytes]
"""An event encoded once per codec: codec name → frame bytes."""


def encode_event(event: Event) -> EncodedEvent:
    """Encode an event once per codec, so fan-out shares bytes instead of
    re-encoding per recipient. ``encode_event(e)[JSON.name]`` is also the form to
    store in the database."""
    return {name: codec.encode(event) for name, codec in CODECS.items()}


def decode_stored_event(data: bytes | str) -> AnyEvent:
    """Decode an event stored as JSON (``encode_event(e)[JSON.name]``)."""
    return JSON.decode_event(data)


def encode_result(result: Result) -> bytes:
    """Encode a command result as JSON (e.g. to store it under an idempotency key);
    decode it again with ``JSON.decode_result(data, result_type)``."""
    return _json_encoder.encode(result)
