"""The web client's generated types (clients/typescript/src/generated/protocol.ts) stay
in step with protocol/, and the generator maps the wire rules exactly."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.messages import COMMANDS, DURABLE_EVENTS, EPHEMERAL_EVENTS, EVENTS
from protocol.typescript import typescript_module

GENERATED = (
    Path(__file__).resolve().parents[2] / "clients" / "typescript" / "src" / "generated"
    / "protocol.ts"
)


def _interface(text: str, name: str) -> str:
    match = re.search(rf"^export interface {name} \{{\n(.*?)^\}}", text, re.S | re.M)
    assert match, f"no interface {name}"
    return "\n".join(
        line.strip() for line in match.group(1).splitlines() if not line.strip().startswith("/**")
    )


def _const_list(text: str, name: str) -> list[str]:
    match = re.search(rf"^export const {name}: readonly \w+\[\] = \[\n(.*?)^\];", text, re.S | re.M)
    assert match, name
    return re.findall(r'"([^"]+)"', match.group(1))


def test_committed_file_matches_the_generator() -> None:
    assert GENERATED.read_text() == typescript_module(), (
        "clients/typescript/src/generated/protocol.ts is stale: run "
        "`.venv/bin/python -m protocol.typescript > clients/typescript/src/generated/protocol.ts`"
    )


def test_generation_is_deterministic() -> None:
    assert typescript_module() == typescript_module()


def test_every_command_and_event_is_mapped() -> None:
    text = typescript_module()
    commands = _interface(text, "CommandMap")
    results = _interface(text, "CommandResults")
    for tag, cls in COMMANDS.items():
        assert f'"{tag}": {cls.__name__};' in commands
        assert f'"{tag}": {cls.result_type.__name__};' in results
        assert f'type: "{tag}";' in _interface(text, cls.__name__)
    events = _interface(text, "EventMap")
    for tag, event in EVENTS.items():
        assert f'"{tag}": {event.__name__};' in events
    assert _const_list(text, "DURABLE_EVENT_TAGS") == [t for t in EVENTS if t in DURABLE_EVENTS]
    assert _const_list(text, "EPHEMERAL_EVENT_TAGS") == [
        t for t in EVENTS if t in EPHEMERAL_EVENTS
    ]
    assert _const_list(text, "COMMAND_TAGS") == list(COMMANDS)


def test_required_optional_and_null_follow_the_wire_rules() -> None:
    text = typescript_module()
    # Required with null allowed: always on the wire.
    error = _interface(text, "Error")
    assert "id: string | null;" in error
    assert "retry_after_s?: number | null;" in error
    # omit_defaults=False: the key is always there, even when null.
    assert _interface(text, "SwipeResult") == "match: Match | null;"
    # An update command: absent = unchanged, null = clear.
    update = _interface(text, "PetsUpdate")
    assert "name?: string;" in update and "breed?: string | null;" in update
    # Defaults make a field optional; enums are literal unions.
    send = _interface(text, "ChatSend")
    assert "attachment_ids?: string[];" in send and "client_msg_id: string;" in send
    assert 'export type Species = (typeof Species)[keyof typeof Species];' in text
    assert '  DOG: "dog",' in text
    pet = _interface(text, "Pet")
    assert "photo_ids: string[];" in pet and "birth_date?: DateString | null;" in pet
    assert "created_at: Timestamp;" in _interface(text, "Match")
    assert "data: Record<string, unknown>;" in _interface(text, "Notification")


def test_http_bodies_and_idempotency_keys_are_included() -> None:
    text = typescript_module()
    for name in ("RegisterRequest", "AuthResponse", "PresignResponse", "MultipartResponse",
                 "CompleteRequest", "UploadResponse"):
        _interface(text, name)
    keyed = re.search(r"IDEMPOTENCY_FIELDS[^=]*= \{\n(.*?)^\};", text, re.S | re.M)
    assert keyed
    fields = dict(re.findall(r'"([^"]+)": "([^"]+)"', keyed.group(1)))
    expected = {
        tag: name
        for tag, cls in COMMANDS.items()
        for name in ("client_msg_id", "idempotency_key")
        if name in cls.__struct_fields__
    }
    assert fields == expected and fields["chat.send"] == "client_msg_id"


def test_facades_cover_every_command() -> None:
    text = typescript_module()
    facade = text[text.index("export function createFacades"):]
    for tag in COMMANDS:
        assert f'c.command("{tag}", params' in facade, tag
    assert "    chat: {\n" in facade and "      send: (params: " in facade
    assert "    matching: {\n" in facade and "      swipe: (params: " in facade  # no prefix
