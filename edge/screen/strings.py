"""The resident screen's words, per language (config/edge/screen.yaml), checked at start-up:
every site language must have every key, so the page never falls back to another language
in front of a resident."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

ROLES = ("remote_worker", "agent", "specialist", "floor_staff")


class UiStrings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    welcome: str
    choose_language: str
    type_here: str
    send: str
    talk_to_person: str
    person_request: str  # sent as the resident's turn when they touch "talk to a person"
    listening: str
    thinking: str
    you: str
    assistant: str
    connecting: str
    wait_minutes: str
    wait_soon: str
    wait_unknown: str
    have_ready: str
    keep_talking: str
    camera_on: str
    transfer: str
    transfer_detail: str
    thanks: str
    rate: str
    rated: str
    clears_in: str
    more_time: str
    finish: str
    emergency: str
    emergency_number: str
    untranslated: str
    text_size: str
    contrast: str
    language: str
    conversation: str
    video_of: str
    roles: dict[str, str]

    @model_validator(mode="after")
    def _all_roles(self) -> UiStrings:
        missing = [r for r in ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"roles lacks {missing}")
        return self


class ScreenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clear_after_s: float = Field(default=30, gt=0, le=600)
    clear_after_rating_s: float = Field(default=4, gt=0, le=60)
    languages: dict[str, UiStrings]
    have_ready: dict[str, dict[str, list[str]]] = Field(default_factory=dict)

    def check_languages(self, site_languages: list[str]) -> None:
        missing = [lang for lang in site_languages if lang not in self.languages]
        if missing:
            raise ValueError(f"no screen strings for the site's languages {missing}: add them "
                             "under 'languages'")

    def ready_list(self, intent: str | None, language: str) -> list[str]:
        by_lang = self.have_ready.get(intent or "") or self.have_ready.get("default") or {}
        return list(by_lang.get(language, []))


DEFAULT_PATH = Path(__file__).resolve().parents[2] / "config" / "edge" / "screen.yaml"


def load_screen_config(path: str | Path | None = None,
                       site_languages: list[str] | None = None) -> ScreenConfig:
    """Raises common.config.ConfigError naming the file, the key and the reason."""
    from common.config import ConfigError, parse_file

    p = Path(path) if path else DEFAULT_PATH
    cfg: ScreenConfig = parse_file(p, ScreenConfig)  # type: ignore[assignment]
    if site_languages:
        try:
            cfg.check_languages(site_languages)
        except ValueError as exc:
            raise ConfigError(str(p), "languages", str(exc)) from None
    return cfg
