"""Bodies of the operational HTTP routes: ``GET /healthz`` and ``GET /readyz`` (untagged)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Health", "Readiness"]


class Health(msgspec.Struct, kw_only=True):
    """``GET /healthz``: the process answers (no backend is checked)."""

    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct, kw_only=True):
    """``GET /readyz``: 200 ``ready`` when every backend answered within 3 s, else 503
    ``unavailable``; ``checks`` maps each backend (``database``, ``broker``, ``storage``)
    to ``ok`` or ``failed: <error type>``."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
