"""What any JSON value that crosses the wire must be, wherever it lands (docs/protocol.md §8):
finite numbers, valid Unicode text, bounded depth and size. Pure: no I/O.

Free-form fields (an event's ``account``, ``args``, ``result``, ``detail``; a case's
``account`` over REST) take ``FreeJson``/``FreeValue``; whole event payloads are walked by
``check_json`` too, so nothing that reaches the group commit can be refused by the store.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_DEPTH = 8  # levels of objects/arrays inside a free-form field
MAX_NODES = 2000  # values in one free-form field (keys not counted)
MAX_KEY = 200  # characters in an object key
MAX_INT = 2**63 - 1  # what a 64-bit column or JSON reader holds


def check_json(value: Any, where: str = "value", max_depth: int = MAX_DEPTH,
               max_nodes: int = MAX_NODES) -> Any:
    """``value`` unchanged, or ValueError saying what to fix. Iterative: a hostile nesting
    depth cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        v, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ValueError(f"{where} holds more than {max_nodes} values: send less")
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, str):
            _check_text(v, where)
        elif isinstance(v, int):
            if abs(v) > MAX_INT:
                raise ValueError(f"{where} holds an integer beyond 64 bits")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"{where} holds {v!r}: numbers must be finite "
                                 "(no NaN or Infinity)")
        elif isinstance(v, dict | list | tuple):
            if depth >= max_depth:
                raise ValueError(f"{where} is nested deeper than {max_depth} levels: "
                                 "flatten it")
            if isinstance(v, dict):
                for k, item in v.items():
                    if not isinstance(k, str) or len(k) > MAX_KEY:
                        raise ValueError(f"{where} has a key that is not a string of at most "
                                         f"{MAX_KEY} characters")
                    _check_text(k, where)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in v)
    return value


def _check_text(s: str, where: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} holds an unpaired surrogate: send valid UTF-8 "
                         "text") from None


_FREE = (f"Free-form JSON: at most {MAX_DEPTH} levels deep and {MAX_NODES} values, finite "
         "numbers, keys of at most 200 characters.")
FreeJson = Annotated[dict[str, Any], AfterValidator(lambda v: check_json(v, "object")),
                     Field(description=_FREE)]
FreeValue = Annotated[Any, AfterValidator(lambda v: check_json(v, "value")),
                      Field(description=_FREE)]
