"""config/workspace.yaml: disposition codes and canned responses per language for the desk.
Validated at load; a bad file is a clear error naming the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, parse_file

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


def load_workspace(directory: str | Path) -> WorkspaceFile:
    """Raises common.config.ConfigError naming the file, the key and the reason."""
    path = Path(directory) / FILE
    if not path.exists():
        raise ConfigError(str(path), "", f"missing: copy config/{FILE} from the repository")
    return parse_file(path, WorkspaceFile)
