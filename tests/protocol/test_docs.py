"""docs/protocol.md stays in sync with the code."""

from __future__ import annotations

from pathlib import Path

from protocol.catalogue import markdown_catalogue
from protocol.messages import COMMANDS, EVENTS, NOT_YET_IMPLEMENTED

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_catalogue_in_docs_matches_code() -> None:
    text = DOC.read_text()
    start = text.index("<!-- catalogue:start -->\n") + len("<!-- catalogue:start -->\n")
    end = text.index("<!-- catalogue:end -->")
    assert text[start:end] == markdown_catalogue(), "run: python -m protocol.catalogue"


def test_docs_mention_every_tag() -> None:
    text = DOC.read_text()
    for tag in [*COMMANDS, *EVENTS, *NOT_YET_IMPLEMENTED]:
        assert f"`{tag}" in text, tag
