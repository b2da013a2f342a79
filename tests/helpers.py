"""Small helpers shared by the tests: prerequisites and free ports.

Other conftests and tests import from here: ``from tests.helpers import require, free_port``.
"""

from __future__ import annotations

import os

import pytest

from sandbox.procs import free_port  # noqa: F401  (re-exported for the tests)


def in_ci() -> bool:
    """True when running under CI (env CI=true), where every prerequisite must be present."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require(condition: bool, what: str, how: str) -> None:
    """Stop the current test unless `condition` holds.

    Under CI a missing prerequisite is a failure (CI must run everything); elsewhere the test
    is skipped, and the reason is listed in pytest's summary (-ra).
    `what` names the prerequisite, `how` says how to get it.
    """
    if condition:
        return
    message = f"missing prerequisite: {what}. To fix: {how}"
    if in_ci():
        pytest.fail(f"{message} (required because CI=true)", pytrace=False)
    try:  # report the skip at the test, not at this line (private pytest flag, pytest >= 7)
        skipped = pytest.skip.Exception(message, _use_item_location=True)
    except TypeError:
        pytest.skip(message)
    raise skipped
