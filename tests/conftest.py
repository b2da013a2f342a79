"""Session-wide test setup. The helpers live in tests/helpers.py so other conftests can
import them; they are re-exported here for convenience."""

from __future__ import annotations

import pytest

from tests.helpers import free_port, in_ci, require

__all__ = ["free_port", "in_ci", "require"]


def pytest_report_header(config: pytest.Config) -> str:
    if in_ci():
        return "CI=true: missing prerequisites fail instead of skipping"
    return "missing prerequisites skip (set CI=true to make them fail)"
