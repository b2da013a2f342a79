"""One error root: every exception class of the product packages derives from
common.errors.BatonError and carries a snake_case ``reason`` code (docs/architecture.md)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

from common.errors import BatonError

PACKAGES = ("protocol", "common", "router", "edge", "endpoints")
REASON = re.compile(r"^[a-z][a-z0-9_]{1,60}$")
# Classes whose modules other branches of issue 13 rewrite at the same time (the core, the MQTT
# client, bridge and relay, the station, the peer): they join the root when those land, and
# then leave this list. Nothing else may be added here.
NOT_YET: set[str] = set()  # all joined


def _exception_classes() -> list[type[BaseException]]:
    found = {}
    for pkg in PACKAGES:
        root = importlib.import_module(pkg)
        names = [pkg] + [m.name for m in pkgutil.walk_packages(root.__path__, pkg + ".")
                         if ".migrations" not in m.name]
        for name in names:
            mod = importlib.import_module(name)
            for _, cls in inspect.getmembers(mod, inspect.isclass):
                if (issubclass(cls, BaseException) and cls.__module__ == name
                        and not cls.__name__.startswith("_")):  # private: never leaves its module
                    found[f"{name}.{cls.__name__}"] = cls
    return [found[k] for k in sorted(found)]


CLASSES = _exception_classes()


def test_the_walk_finds_the_errors():
    names = {f"{c.__module__}.{c.__name__}" for c in CLASSES}
    assert {"common.config.ConfigError", "router.store.errors.SeqGap",
            "edge.device.base.DeviceError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_error_derives_from_the_root_with_a_reason(cls: type[BaseException]):
    qual = f"{cls.__module__}.{cls.__name__}"
    if qual in NOT_YET:
        assert not issubclass(cls, BatonError), f"{qual} joined the root: take it off NOT_YET"
        return
    assert issubclass(cls, BatonError), f"{qual} must derive from common.errors.BatonError"
    assert REASON.match(cls.reason), f"{qual}.reason = {cls.reason!r} is not a snake_case code"
    assert cls is BatonError or cls.reason != BatonError.reason, f"{qual} must name its reason"


def test_a_reason_given_to_one_error_stays_with_it():
    from router.turns import TurnRejected

    exc = TurnRejected("empty_text", "the turn has no text")
    assert exc.reason == "empty_text" and str(exc) == "the turn has no text"
    assert TurnRejected.reason == "turn_rejected"  # the class keeps its own
