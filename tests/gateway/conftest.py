"""The ``app_client`` fixture lives in tests/conftest.py; this keeps the type importable here."""

from __future__ import annotations

from tests.conftest import AppClient

__all__ = ["AppClient"]
