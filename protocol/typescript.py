"""TypeScript declarations for the web client, generated from the Structs (never by hand).

``python -m protocol.typescript`` prints the file that is committed as
``clients/typescript/src/generated/protocol.ts`` (a test fails when the two differ).
Nothing here is per area: every ``msgspec.Struct`` defined in a ``protocol`` module is
emitted, every command of ``AnyCommand`` gets its entry in the command/result maps and
a facade method, every event of ``AnyEvent`` its entry in the event map. A new area
only has to be in ``protocol/`` (and its messages in the unions of ``messages.py``).

Mapping rules (the wire shape of ``docs/protocol.md`` "Omitted versus null"):

- a field without a default is required (``name: T``); a field with a default — or an
  update command's UNSET field — may be absent (``name?: T``), except in a Struct with
  ``omit_defaults=False`` (e.g. ``SwipeResult``), whose every key is always sent;
- ``T | None`` is ``T | null``; enums are literal unions (plus a const object of the
  same name); times are RFC 3339 strings, dates ``YYYY-MM-DD`` strings;
- bounds (lengths, ranges, patterns) and defaults are written as JSDoc.

Pure: it imports the ``protocol`` package's modules and returns text.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import inspect as mi

import protocol
from protocol.base import Command, DurableEvent, Event, Message, Result
from protocol.codes import CloseCode, ErrorCode
from protocol.messages import (
    COMMANDS,
    DURABLE_EVENTS,
    EPHEMERAL_EVENTS,
    EVENTS,
    AnyCommand,
    AnyEvent,
    ClientMessage,
    ServerMessage,
)

_ABSTRACT: frozenset[type] = frozenset({Message, Command, Event, DurableEvent, Result})
_IDEMPOTENCY_FIELDS = ("client_msg_id", "idempotency_key")
_SKIP_MODULES = frozenset({"protocol.typescript"})


class GeneratorError(Exception):
    """The protocol has something the generator cannot express (e.g. two Structs with
    one name, or a field type with no TypeScript mapping)."""


def _protocol_modules() -> list[Any]:
    names = sorted(
        f"protocol.{m.name}" for m in pkgutil.iter_modules(protocol.__path__) if not m.ispkg
    )
    return [importlib.import_module(n) for n in names if n not in _SKIP_MODULES]


def _structs() -> list[type[msgspec.Struct]]:
    """Every public Struct class defined in a protocol module, by (module, name)."""
    found: dict[str, type[msgspec.Struct]] = {}
    for module in _protocol_modules():
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and value not in _ABSTRACT
            ):
                other = found.get(value.__name__)
                if other is not None and other is not value:
                    raise GeneratorError(
                        f"two Structs named {value.__name__}: {other.__module__} and "
                        f"{value.__module__} (TypeScript names must be unique)"
                    )
                found[value.__name__] = value
    return sorted(found.values(), key=lambda c: (c.__module__, c.__name__))


def _union_members(union: object) -> list[type[msgspec.Struct]]:
    args = getattr(union, "__args__", ())
    return [a for a in args if isinstance(a, type)]


def _ts_string(value: str) -> str:
    return msgspec.json.encode(value).decode()


def _doc_summary(cls: type) -> str:
    """The first paragraph of the class's own docstring (not an inherited one)."""
    doc = vars(cls).get("__doc__")
    if not isinstance(doc, str):
        return ""
    text = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    return text.replace("``", "`")


def _jsdoc(text: str, indent: str = "") -> list[str]:
    text = text.replace("*/", "*\\/").strip()
    if not text:
        return []
    return [f"{indent}/** {text} */"]


class _Emitter:
    def __init__(self) -> None:
        self.enums: dict[str, type[enum.Enum]] = {}

    def enum_name(self, cls: type[enum.Enum]) -> str:
        other = self.enums.get(cls.__name__)
        if other is not None and other is not cls:
            raise GeneratorError(f"two enums named {cls.__name__}")
        self.enums[cls.__name__] = cls
        return cls.__name__

    def ts(self, t: mi.Type) -> str:
        """The TypeScript type of a msgspec type."""
        if isinstance(t, mi.Metadata):
            return self.ts(t.type)
        if isinstance(t, (mi.StrType, mi.UUIDType, mi.DecimalType, mi.BytesType)):
            return "string"
        if isinstance(t, (mi.IntType, mi.FloatType)):
            return "number"
        if isinstance(t, mi.BoolType):
            return "boolean"
        if isinstance(t, mi.NoneType):
            return "null"
        if isinstance(t, mi.DateTimeType):
            return "Timestamp"
        if isinstance(t, mi.DateType):
            return "DateString"
        if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            item = self.ts(t.item_type)
            return f"({item})[]" if " " in item else f"{item}[]"
        if isinstance(t, mi.TupleType):
            return "[" + ", ".join(self.ts(i) for i in t.item_types) + "]"
        if isinstance(t, mi.DictType):
            return f"Record<{self.ts(t.key_type)}, {self.ts(t.value_type)}>"
        if isinstance(t, mi.EnumType):
            return self.enum_name(t.cls)
        if isinstance(t, mi.LiteralType):
            return " | ".join(
                _ts_string(v) if isinstance(v, str) else msgspec.json.encode(v).decode()
                for v in t.values
            )
        if isinstance(t, mi.StructType):
            return t.cls.__name__
        if isinstance(t, mi.UnionType):
            parts: list[str] = []
            for member in t.types:
                text = self.ts(member)
                if text not in parts:
                    parts.append(text)
            # null last reads best: `string | null`.
            parts.sort(key=lambda p: p == "null")
            return " | ".join(parts)
        if isinstance(t, (mi.RawType, mi.AnyType)):
            return "unknown"
        raise GeneratorError(f"no TypeScript mapping for {t!r}")


def _bounds(t: mi.Type) -> str:
    """A short human description of a type's constraints, for JSDoc."""
    if isinstance(t, mi.Metadata):
        inner = _bounds(t.type)
        desc = (t.extra_json_schema or {}).get("description")
        return " ".join(p for p in (inner, desc) if p)
    if isinstance(t, mi.UnionType):
        return " ".join(b for b in (_bounds(m) for m in t.types) if b)
    if isinstance(t, mi.StrType):
        parts = []
        if t.min_length is not None and t.max_length is not None:
            parts.append(f"{t.min_length}..{t.max_length} characters.")
        elif t.max_length is not None:
            parts.append(f"At most {t.max_length} characters.")
        elif t.min_length is not None:
            parts.append(f"At least {t.min_length} characters.")
        if t.pattern:
            parts.append(f"Pattern `{t.pattern}`.")
        return " ".join(parts)
    if isinstance(t, (mi.IntType, mi.FloatType)):
        kind = "Integer" if isinstance(t, mi.IntType) else "Number"
        parts = []
        if t.ge is not None:
            parts.append(f"≥ {t.ge}")
        if t.gt is not None:
            parts.append(f"> {t.gt}")
        if t.le is not None:
            parts.append(f"≤ {t.le}")
        if t.lt is not None:
            parts.append(f"< {t.lt}")
        return f"{kind}{' ' + ', '.join(parts) if parts else ''}."
    if isinstance(t, mi.ListType):
        item = _bounds(t.item_type)
        size = ""
        if t.min_length is not None and t.max_length is not None:
            size = f"{t.min_length}..{t.max_length} items."
        elif t.max_length is not None:
            size = f"At most {t.max_length} items."
        elif t.min_length is not None:
            size = f"At least {t.min_length} items."
        return " ".join(p for p in (size, f"Each: {item}" if item else "") if p)
    if isinstance(t, mi.DateTimeType):
        return "RFC 3339 time."
    if isinstance(t, mi.DateType):
        return "Date, YYYY-MM-DD."
    return ""


def _field_lines(em: _Emitter, cls: type[msgspec.Struct]) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    always_sent = not cls.__struct_config__.omit_defaults
    lines: list[str] = []
    tag = cls.__struct_config__.tag
    tag_field = cls.__struct_config__.tag_field
    if isinstance(tag, str) and tag_field:
        lines.append(f"  {tag_field}: {_ts_string(tag)};")
    for f in info.fields:
        optional = not (f.required or always_sent)
        doc = _bounds(f.type)
        default: object = msgspec.NODEFAULT
        if f.default is not msgspec.NODEFAULT:
            default = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        if default is not msgspec.NODEFAULT and default is not None:
            doc = (doc + f" Default {msgspec.json.encode(default).decode()}.").strip()
        elif optional and f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT:
            doc = (doc + " Absent: unchanged.").strip()
        lines += _jsdoc(doc, "  ")
        lines.append(f"  {f.encode_name}{'?' if optional else ''}: {em.ts(f.type)};")
    return lines


def _camel(words: Iterable[str]) -> str:
    parts = [p for w in words for p in re.split(r"[._]", w) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _area_and_method(tag: str, cls: type[Command]) -> tuple[str, str]:
    """``chat.send`` → (chat, send); ``admin.moderation.queue`` → (admin, moderationQueue);
    a tag without a prefix (``swipe``) goes to the area named by its module (matching)."""
    if "." in tag:
        area, rest = tag.split(".", 1)
        return _camel([area]), _camel([rest])
    return cls.__module__.rsplit(".", 1)[-1], _camel([tag])


def _required_params(cls: type[Command]) -> bool:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return any(
        f.required and f.name != "id" and f.name not in _IDEMPOTENCY_FIELDS for f in info.fields
    )


def _idempotency_field(cls: type[Command]) -> str | None:
    names = set(cls.__struct_fields__)
    for name in _IDEMPOTENCY_FIELDS:
        if name in names:
            return name
    return None


def _enum_lines(cls: type[enum.Enum]) -> list[str]:
    lines = _jsdoc(_doc_summary(cls))
    lines.append(f"export const {cls.__name__} = {{")
    for member in cls:
        value = member.value
        text = _ts_string(value) if isinstance(value, str) else str(int(value))
        lines.append(f"  {member.name}: {text},")
    lines.append("} as const;")
    name = cls.__name__
    lines.append(f"export type {name} = (typeof {name})[keyof typeof {name}];")
    return lines


HEADER = """\
// GENERATED by `python -m protocol.typescript` from the server's protocol/ package.
// Do not edit: change protocol/ and regenerate (a test fails when this file drifts).
/* eslint-disable */
"""


def typescript_module() -> str:
    """The generated TypeScript module (deterministic)."""
    em = _Emitter()
    body: list[str] = []

    body += [
        "/** An RFC 3339 time; the server sends UTC spelt with `Z`. */",
        "export type Timestamp = string;",
        "/** A calendar date, `YYYY-MM-DD`. */",
        "export type DateString = string;",
        "",
    ]

    structs = _structs()
    interface_lines: list[str] = []
    module = ""
    for cls in structs:
        if cls.__module__ != module:
            module = cls.__module__
            interface_lines += [f"// ---- {module} ----", ""]
        interface_lines += _jsdoc(_doc_summary(cls))
        fields = _field_lines(em, cls)
        if fields:
            interface_lines.append(f"export interface {cls.__name__} {{")
            interface_lines += fields
            interface_lines.append("}")
        else:
            interface_lines.append(f"export interface {cls.__name__} {{}}")
        interface_lines.append("")

    em.enum_name(CloseCode)
    em.enum_name(ErrorCode)
    for name in sorted(em.enums):
        body += [*_enum_lines(em.enums[name]), ""]
    body += interface_lines

    def union(name: str, members: list[type[msgspec.Struct]], doc: str) -> list[str]:
        out = _jsdoc(doc)
        out.append(f"export type {name} =")
        out += [f"  | {m.__name__}" for m in members]
        out[-1] += ";"
        return [*out, ""]

    commands = _union_members(AnyCommand)
    events = _union_members(AnyEvent)
    body += ["// ---- catalogue ----", ""]
    body += union("AnyCommand", commands, "Every command (client → server, answered ok/error).")
    body += union("AnyEvent", events, "Every event the server pushes.")
    body += union("ClientMessage", _union_members(ClientMessage), "Everything a client sends.")
    body += union("ServerMessage", _union_members(ServerMessage), "Everything the server sends.")

    body.append("/** Command tag → command message. */")
    body.append("export interface CommandMap {")
    body += [f"  {_ts_string(tag)}: {cls.__name__};" for tag, cls in COMMANDS.items()]
    body += ["}", ""]
    body.append("/** Command tag → its `ok.result` type. */")
    body.append("export interface CommandResults {")
    body += [
        f"  {_ts_string(tag)}: {cls.result_type.__name__};" for tag, cls in COMMANDS.items()
    ]
    body += ["}", ""]
    body.append("/** Event tag → event message. */")
    body.append("export interface EventMap {")
    body += [f"  {_ts_string(tag)}: {cls.__name__};" for tag, cls in EVENTS.items()]
    body += ["}", ""]
    body += [
        "export type CommandTag = keyof CommandMap;",
        "export type EventTag = keyof EventMap;",
        "",
        "/** Every command tag, in catalogue order. */",
        "export const COMMAND_TAGS: readonly CommandTag[] = [",
    ]
    body += [f"  {_ts_string(tag)}," for tag in COMMANDS]
    body += ["];", "", "/** Tags of durable events (carry `seq`, replayed on resume). */"]
    body.append("export const DURABLE_EVENT_TAGS: readonly EventTag[] = [")
    body += [f"  {_ts_string(tag)}," for tag in EVENTS if tag in DURABLE_EVENTS]
    body += ["];", "", "/** Tags of ephemeral events (no `seq`; lost while disconnected). */"]
    body.append("export const EPHEMERAL_EVENT_TAGS: readonly EventTag[] = [")
    body += [f"  {_ts_string(tag)}," for tag in EVENTS if tag in EPHEMERAL_EVENTS]
    body += ["];", ""]
    body.append("export type DurableEventTag =")
    body += [f"  | {_ts_string(tag)}" for tag in EVENTS if tag in DURABLE_EVENTS]
    body[-1] += ";"
    body += [""]

    keyed = {tag: _idempotency_field(cls) for tag, cls in COMMANDS.items()}
    body += [
        "/** Commands that carry an idempotency key, and its field: the client fills it with",
        " * a random id when the caller gives none, and resends the command after a",
        " * reconnect if its reply was lost. */",
        "export const IDEMPOTENCY_FIELDS: { readonly [T in CommandTag]?: string } = {",
    ]
    body += [f"  {_ts_string(tag)}: {_ts_string(field)}," for tag, field in keyed.items() if field]
    body += ["};", ""]

    body += [
        "type Optional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;",
        "",
        "/** What `command(tag, params)` takes: the message without `type` and `id` (and",
        " * with its idempotency key optional). */",
        "export interface CommandParamsMap {",
    ]
    for tag, cls in COMMANDS.items():
        base = f'Omit<{cls.__name__}, "type" | "id">'
        field = keyed[tag]
        if field:
            base = f"Optional<{base}, {_ts_string(field)}>"
        body.append(f"  {_ts_string(tag)}: {base};")
    body += ["}", "", "export type CommandParams<T extends CommandTag> = CommandParamsMap[T];", ""]

    # Facades: one object per area (the tag's prefix), one method per command.
    areas: dict[str, list[tuple[str, str, type[Command]]]] = {}
    for tag, cls in COMMANDS.items():
        area, method = _area_and_method(tag, cls)
        areas.setdefault(area, []).append((method, tag, cls))
    body += [
        "/** Per-call options of `command()`. */",
        "export interface CommandOptions {",
        "  /** Milliseconds to wait for the reply, the wait for a connection included. */",
        "  timeoutMs?: number;",
        "  /** Resend after a reconnect if unanswered (default: when it carries an",
        "   * idempotency key). */",
        "  resend?: boolean;",
        "  /** Abandons the wait (the command may still take effect). */",
        "  signal?: AbortSignal;",
        "}",
        "",
        "/** Anything with a typed `command()` (the `Client`). */",
        "export interface CommandSender {",
        "  command<T extends CommandTag>(",
        "    tag: T,",
        "    params: CommandParams<T>,",
        "    options?: CommandOptions,",
        "  ): Promise<CommandResults[T]>;",
        "}",
        "",
        "/** Area facades (`facades.chat.send({...})`): one object per tag prefix, one method",
        " * per command. Regenerated with the protocol, so new areas get theirs. */",
        "export function createFacades(c: CommandSender) {",
        "  return {",
    ]
    for area in sorted(areas):
        body.append(f"    {area}: {{")
        for method, tag, cls in areas[area]:
            summary = _doc_summary(cls)
            body += _jsdoc(f"`{tag}` → `{cls.result_type.__name__}`. {summary}", "      ")
            opt = "" if _required_params(cls) else "?"
            default = "" if _required_params(cls) else " ?? {}"
            body.append(
                f"      {method}: (params{opt}: CommandParams<{_ts_string(tag)}>, "
                f"options?: CommandOptions): Promise<CommandResults[{_ts_string(tag)}]> =>"
            )
            body.append(f"        c.command({_ts_string(tag)}, params{default}, options),")
        body.append("    },")
    body += ["  };", "}", "", "export type Facades = ReturnType<typeof createFacades>;", ""]

    return HEADER + "\n" + "\n".join(body).rstrip() + "\n"


if __name__ == "__main__":
    print(typescript_module(), end="")
