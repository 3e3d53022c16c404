"""A Markdown catalogue of every message, result and object, generated from the Structs.

``docs/protocol.md`` embeds its output (a test keeps the two in sync):
``python -m protocol.catalogue`` prints it.
"""

from __future__ import annotations

import msgspec
from msgspec import inspect as mi

from protocol import admin, auth, flags, objects, uploads
from protocol.base import Command, DurableEvent, Message
from protocol.messages import CLIENT_MESSAGE_TYPES, COMMANDS, SERVER_MESSAGE_TYPES
from protocol.types import Location


def _bounds(low: object, high: object) -> str:
    if low is not None and high is not None:
        return f" {low}..{high}"
    if low is not None:
        return f" ≥ {low}"
    if high is not None:
        return f" ≤ {high}"
    return ""


def render_type(t: mi.Type) -> str:
    """A short human form of a msgspec type, with its bounds."""
    if isinstance(t, mi.Metadata):
        return render_type(t.type)
    if isinstance(t, mi.StrType):
        kind = "email" if t.pattern and "@" in t.pattern else "str"
        return kind + _bounds(t.min_length, t.max_length)
    if isinstance(t, mi.IntType):
        return "int" + _bounds(t.ge, t.le) + (f" > {t.gt}" if t.gt is not None else "")
    if isinstance(t, mi.FloatType):
        return "float" + _bounds(t.ge, t.le) + (f" > {t.gt}" if t.gt is not None else "")
    if isinstance(t, mi.BoolType):
        return "bool"
    if isinstance(t, mi.NoneType):
        return "null"
    if isinstance(t, mi.DateTimeType):
        return "time"
    if isinstance(t, mi.DateType):
        return "date"
    if isinstance(t, mi.ListType):
        return f"[{render_type(t.item_type)}]" + _bounds(t.min_length, t.max_length)
    if isinstance(t, mi.DictType):
        return "{" + f"{render_type(t.key_type)}: {render_type(t.value_type)}" + "}"
    if isinstance(t, mi.EnumType):
        return "|".join(str(m.value) for m in t.cls)
    if isinstance(t, mi.StructType):
        return t.cls.__name__
    if isinstance(t, mi.UnionType):
        return " | ".join(render_type(u) for u in t.types)
    if isinstance(t, mi.RawType):
        return "object"
    if isinstance(t, mi.AnyType):
        return "any"
    return type(t).__name__


def render_fields(cls: type[msgspec.Struct]) -> str:
    """``{a: T, b?: T = default}``; ``?`` marks a field that may be absent (a field
    with ``?`` and no default is UNSET when absent: "leave unchanged")."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    # With omit_defaults off (e.g. SwipeResult) every key is always sent.
    always_sent = not cls.__struct_config__.omit_defaults
    parts = []
    for f in info.fields:
        if f.name == "type" and issubclass(cls, Message):
            continue
        text = f"{f.encode_name}{'' if f.required or always_sent else '?'}: {render_type(f.type)}"
        if f.default not in (msgspec.NODEFAULT, None):
            text += f" = {msgspec.json.encode(f.default).decode()}"
        elif f.default_factory is not msgspec.NODEFAULT:
            text += f" = {msgspec.json.encode(f.default_factory()).decode()}"
        parts.append(text)
    return "{" + ", ".join(parts) + "}"


def _line(cls: type[Message]) -> str:
    line = f"- `{cls.wire_type()}` (`{cls.__name__}`) `{render_fields(cls)}`"
    if issubclass(cls, Command):
        line += f" → `{cls.result_type.__name__}`"
    if issubclass(cls, DurableEvent):
        line += " — durable"
    return line


def markdown_catalogue() -> str:
    """The catalogue as Markdown (deterministic)."""
    out = ["#### Client → server", ""]
    out += [_line(c) for c in CLIENT_MESSAGE_TYPES]
    out += ["", "#### Server → client", ""]
    out += [_line(c) for c in SERVER_MESSAGE_TYPES]
    out += ["", "#### Command results (`ok.result`)", ""]
    seen: set[type] = set()
    for cmd in COMMANDS.values():
        if cmd.result_type not in seen:
            seen.add(cmd.result_type)
            out.append(f"- `{cmd.result_type.__name__}` `{render_fields(cmd.result_type)}`")
    out += ["", "#### Objects", ""]
    object_types: list[type[msgspec.Struct]] = [Location]
    for module in (objects, admin, flags):  # areas with objects of their own
        object_types += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, objects._Object)
            and v is not objects._Object and v.__module__ == module.__name__
        ]
    out += [f"- `{c.__name__}` `{render_fields(c)}`" for c in object_types]
    out += ["", "#### HTTP bodies (untagged)", ""]
    http: list[type[msgspec.Struct]] = [
        auth.RegisterRequest,
        auth.LoginRequest,
        auth.RefreshRequest,
        auth.LogoutRequest,
        auth.AuthResponse,
        auth.MeResponse,
        auth.ErrorBody,
        auth.ErrorDetail,
        uploads.PresignRequest,
        uploads.PresignResponse,
        uploads.UploadResponse,
    ]
    out += [f"- `{c.__name__}` `{render_fields(c)}`" for c in http]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown_catalogue(), end="")
