"""config/workspace.yaml: disposition codes and canned responses per language for the desk.
Validated at load; a bad file is a clear error naming the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FILE = "workspace.yaml"


class Disposition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    label: str = Field(min_length=1, max_length=120)
    status: Literal["resolved", "abandoned"] = "resolved"


class WorkspaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dispositions: list[Disposition] = Field(min_length=1)
    canned: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> WorkspaceFile:
        codes = [d.code for d in self.dispositions]
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"disposition codes must be unique; repeated: {', '.join(dup)}")
        return self


class WorkspaceConfigError(ValueError):
    pass


def load_workspace(directory: str | Path) -> WorkspaceFile:
    path = Path(directory) / FILE
    if not path.exists():
        raise WorkspaceConfigError(f"{path} is missing: copy config/{FILE} from the repository")
    try:
        return WorkspaceFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "file"
        raise WorkspaceConfigError(f"{path}: {where}: {err['msg']}") from None
    except yaml.YAMLError as exc:
        raise WorkspaceConfigError(f"{path}: not valid YAML: {exc}") from None
