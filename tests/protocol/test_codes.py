from __future__ import annotations

import pytest

from protocol import HTTP_STATUS, CloseCode, ErrorCode, negotiate, should_reconnect


def test_error_codes_are_the_contract_list() -> None:
    assert {c.value for c in ErrorCode} == {
        "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited",
        "too_large", "unavailable", "internal", "unsupported_media_type", "method_not_allowed",
    }  # fmt: skip
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert HTTP_STATUS[ErrorCode.METHOD_NOT_ALLOWED] == 405


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [
        (1000, True),
        (1001, True),
        (1006, True),
        (1009, False),
        (4000, False),
        (4001, False),
        (4002, True),
        (4003, False),
        (4008, True),
        (4009, True),
        (4029, True),
    ],
)
def test_should_reconnect(code: int, reconnect: bool) -> None:
    assert should_reconnect(code) is reconnect


def test_close_code_values() -> None:
    assert int(CloseCode.SLOW_CONSUMER) == 4008
    assert int(CloseCode.TOKEN_EXPIRED) == 4009


def test_negotiate() -> None:
    assert negotiate([]).name == "petspark.v1.json"
    assert negotiate(["graphql-ws", "petspark.v2.json"]).name == "petspark.v1.json"
    assert negotiate(["petspark.v1.msgpack", "petspark.v1.json"]).name == "petspark.v1.msgpack"
    assert negotiate(["x", " petspark.v1.json"]).name == "petspark.v1.json"
