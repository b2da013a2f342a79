"""Reading one YAML config file into a pydantic model, for the router (``router.config``) and
the edge (``edge.node``, ``edge.screen.strings``). A bad file raises ConfigError whose message
names the file, the key path and the reason, e.g.
``config/routing.yaml: workflows.telepresence.steps.1.timeout_s: Input should be > 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from common.errors import BatonError

M = TypeVar("M", bound=BaseModel)


class ConfigError(BatonError):
    """``file``, ``key`` (dotted path, or '' for the whole file) and ``detail`` (what is wrong
    and what to do) make the message."""

    reason = "config_invalid"

    def __init__(self, file: str, key: str, detail: str):
        self.file, self.key, self.detail = file, key, detail
        super().__init__(f"{file}: {key}: {detail}" if key else f"{file}: {detail}")


def yaml_key(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the dotted key path a config file's reader looks for."""
    return ".".join(str(p) for p in loc) or "(top level)"


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file is missing: copy it from the repository's "
                          "config/ directory and edit it") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}")


def parse_file(path: Path, model: type[M]) -> M:
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(str(path), yaml_key(err["loc"]), err["msg"]) from None
