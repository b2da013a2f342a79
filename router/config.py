"""Loading and validating the YAML files in config/.

Every file is validated by pydantic at start-up. A bad file raises ConfigError whose message
names the file, the key path and the reason, e.g.
``config/routing.yaml: workflows.telepresence.steps.1.timeout_s: Input should be > 0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, parse_file
from protocol.models import Channel, Ident, LangCode, Level, Role, Worker, WorkerKind

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- sites.yaml ----------------------------------------------------------------------


class DeviceConfig(_C):
    id: Ident
    kind: Literal["kiosk", "robot"]
    name: str = ""


class SiteEmergency(_C):
    """The emergency protocol at this site (policy.yaml ``emergency`` says which flags start
    it): the number the device shows, and whether the floor monitor's alert blocks with
    sound until a supervisor acknowledges it."""

    enabled: bool = True
    number: str = Field(min_length=1, max_length=40)
    sound: bool = True


class SiteConfig(_C):
    id: Ident
    name: str
    timezone: str = "UTC"
    languages: list[LangCode] = Field(min_length=1)
    devices: list[DeviceConfig] = Field(default_factory=list)
    workflow: Ident | None = None
    emergency: SiteEmergency | None = None


class SitesFile(_C):
    sites: list[SiteConfig] = Field(min_length=1)


# --- languages.yaml, skills.yaml ------------------------------------------------------


class LanguageConfig(_C):
    name: str


class LanguagesFile(_C):
    pivot: LangCode
    languages: dict[LangCode, LanguageConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _pivot_known(self):
        if self.pivot not in self.languages:
            raise ValueError(f"pivot language {self.pivot!r} is not listed under languages")
        return self


class SkillsFile(_C):
    skills: dict[Ident, str] = Field(min_length=1)


# --- workers.yaml ----------------------------------------------------------------------


class WorkersFile(_C):
    workers: list[Worker] = Field(default_factory=list)


# --- routing.yaml ----------------------------------------------------------------------


class Target(_C):
    """A step's target: which workers may take the case.

    ``"case"`` means "take the value from the case's requirement". Every field narrows the
    pool; an omitted field does not constrain it.
    """

    kinds: list[WorkerKind] | None = None
    language: Literal["case"] | LangCode | None = "case"
    min_proficiency: Level = 1
    site: Literal["case"] | Ident | None = None
    skills: Literal["case"] | dict[Ident, Level] | None = "case"
    skill_level_slack: int = Field(default=0, ge=0, le=4)


class StepConfig(_C):
    name: Ident
    target: Target
    timeout_s: float | None = Field(default=None, gt=0)


class WorkflowConfig(_C):
    steps: list[StepConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _only_last_unbounded(self):
        for i, step in enumerate(self.steps[:-1]):
            if step.timeout_s is None:
                raise ValueError(f"step {i} ({step.name}) needs timeout_s: only the last "
                                 "step of a workflow may wait without a timeout")
        return self


class ChannelConfig(_C):
    default_capacity: int = Field(ge=0, le=20)
    # Channels a worker may still take while busy on this one.
    alongside: list[Channel] = Field(default_factory=list)


class PreferredWorkerConfig(_C):
    window_days: float = Field(default=30, gt=0)
    fallback_s: float = Field(default=20, gt=0)


class RoutingFile(_C):
    offer_timeout_s: float = Field(default=20, gt=0)
    away_after_timeouts: int = Field(default=2, ge=1)
    max_wait_s: float = Field(default=900, gt=0)
    service_level_s: float = Field(default=20, gt=0)
    presence_grace_s: float = Field(default=10, ge=0)
    idle_case_timeout_s: float = Field(default=1800, gt=0)
    # After a worker closes a case, it keeps counting in their capacity this long (or until
    # they say they are done): the wrap-up. 0 frees the capacity at the close.
    wrapup_capacity_s: float = Field(default=60, ge=0, le=3600)
    # A device event older than this (by its ts) is refused, not applied: a wrong clock or
    # an outbox replayed from long ago (docs/protocol.md §8, time rules).
    max_event_age_s: float = Field(default=7 * 86400, gt=0)
    # Events a subscriber of the core (the sockets' hub, the MQTT bridge) may fall behind by
    # before it drops them and resynchronises from a snapshot (router/service/core/events.py).
    event_queue: int = Field(default=10_000, ge=1, le=1_000_000)
    preferred_worker: PreferredWorkerConfig = Field(default_factory=PreferredWorkerConfig)
    channels: dict[Channel, ChannelConfig]
    default_workflow: Ident
    workflows: dict[Ident, WorkflowConfig] = Field(min_length=1)
    # Workflow per channel when neither the case nor its site names one.
    channel_workflows: dict[Channel, Ident] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _refs(self):
        if self.default_workflow not in self.workflows:
            raise ValueError(f"default_workflow {self.default_workflow!r} is not defined "
                             "under workflows")
        for ch, wf in self.channel_workflows.items():
            if wf not in self.workflows:
                raise ValueError(f"channel_workflows.{ch.value}: workflow {wf!r} is not "
                                 "defined under workflows")
        missing = set(Channel) - set(self.channels)
        if missing:
            raise ValueError(f"channels must configure {sorted(c.value for c in missing)}")
        return self


# --- tokens.yaml -----------------------------------------------------------------------


class TokenConfig(_C):
    subject: Ident
    role: Role
    token: str | None = Field(default=None, min_length=16)
    token_env: str | None = None
    # A supervisor who is not on the worker roster takes cases from the floor in these
    # languages (levels 1-5): load_config adds them to the roster as floor staff.
    languages: dict[LangCode, Level] | None = None
    name: str = ""

    @model_validator(mode="after")
    def _one_source(self):
        if not self.token and not self.token_env:
            raise ValueError("give token or token_env")
        if self.languages is not None and self.role is not Role.supervisor:
            raise ValueError("only a supervisor entry takes languages (workers are listed "
                             "in workers.yaml)")
        return self


class AccessConfig(_C):
    # A worker who passed a case on (transfer, hand-back, close) may still read it, not
    # change it, for this long: to finish notes and the wrap-up. Then it is gone for them.
    wrapup_minutes: float = Field(default=15.0, ge=0, le=24 * 60)


class TokensFile(_C):
    tokens: list[TokenConfig] = Field(default_factory=list)
    access: AccessConfig = Field(default_factory=AccessConfig)


# --- the whole configuration ------------------------------------------------------------


class BatonConfig(_C):
    directory: str
    sites: SitesFile
    languages: LanguagesFile
    skills: SkillsFile
    workers: WorkersFile
    routing: RoutingFile
    tokens: TokensFile
    # router.transition.TransitionConfig: assistant.yaml, policy.yaml, playbooks.yaml.
    transition: Any = None

    def site(self, site_id: str) -> SiteConfig | None:
        return next((s for s in self.sites.sites if s.id == site_id), None)

    def device(self, device_id: str) -> tuple[SiteConfig, DeviceConfig] | None:
        for s in self.sites.sites:
            for d in s.devices:
                if d.id == device_id:
                    return s, d
        return None

    def resolved_tokens(self, env: dict[str, str] | None = None) -> dict[str, TokenConfig]:
        """token -> entry; token_env wins over token so deployments override demo values
        (outside the demo, router/secrets.py refuses to start while any is a demo value)."""
        env = os.environ if env is None else env
        out: dict[str, TokenConfig] = {}
        for entry in self.tokens.tokens:
            value = env.get(entry.token_env) if entry.token_env else None
            value = value or entry.token
            # "NEW,OLD" while rotating: both sign in; the first is the device's MQTT password.
            for part in (value or "").split(","):
                if part.strip():
                    out[part.strip()] = entry
        return out


_FILES = {
    "sites": ("sites.yaml", SitesFile),
    "languages": ("languages.yaml", LanguagesFile),
    "skills": ("skills.yaml", SkillsFile),
    "workers": ("workers.yaml", WorkersFile),
    "routing": ("routing.yaml", RoutingFile),
    "tokens": ("tokens.yaml", TokensFile),
}


def config_dir(directory: str | Path | None = None) -> Path:
    """The configuration directory: the argument, else $BATON_CONFIG_DIR, else ./config."""
    return Path(directory or os.environ.get("BATON_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def load_config(directory: str | Path | None = None) -> BatonConfig:
    directory = config_dir(directory)
    parts = {name: parse_file(directory / fname, model) for name, (fname, model) in _FILES.items()}
    cfg = BatonConfig(directory=str(directory), **parts)
    _add_supervisors(cfg)
    _cross_check(cfg, directory)
    from router.transition import load_transition_config  # it imports this module

    cfg.transition = load_transition_config(
        directory, languages=set(cfg.languages.languages), skills=set(cfg.skills.skills),
        sites={s.id for s in cfg.sites.sites})
    return cfg


def _add_supervisors(cfg: BatonConfig) -> None:
    """Supervisors with languages in tokens.yaml who are not on the worker roster join it as
    floor staff, so they can take a case from the floor and work it at the desk (the core
    knows only roster workers: presence, capacity, offers). Checked like every worker."""
    on_roster = {w.id for w in cfg.workers.workers}
    for entry in cfg.tokens.tokens:
        if entry.languages and entry.subject not in on_roster:
            cfg.workers.workers.append(Worker(
                id=entry.subject, name=entry.name or entry.subject,
                kind=WorkerKind.floor_staff, languages=entry.languages))
            on_roster.add(entry.subject)


def _cross_check(cfg: BatonConfig, directory: Path) -> None:
    """References between files: every name used must be defined somewhere."""
    langs = set(cfg.languages.languages)
    skills = set(cfg.skills.skills)
    site_ids = [s.id for s in cfg.sites.sites]
    sites_file = str(directory / "sites.yaml")
    workers_file = str(directory / "workers.yaml")
    routing_file = str(directory / "routing.yaml")

    if len(set(site_ids)) != len(site_ids):
        raise ConfigError(sites_file, "sites", "site ids must be unique")
    device_ids: set[str] = set()
    for i, site in enumerate(cfg.sites.sites):
        for lang in site.languages:
            if lang not in langs:
                raise ConfigError(sites_file, f"sites.{i}.languages",
                                  f"language {lang!r} is not defined in languages.yaml")
        if site.workflow and site.workflow not in cfg.routing.workflows:
            raise ConfigError(sites_file, f"sites.{i}.workflow",
                              f"workflow {site.workflow!r} is not defined in routing.yaml")
        for j, dev in enumerate(site.devices):
            if dev.id in device_ids:
                raise ConfigError(sites_file, f"sites.{i}.devices.{j}.id",
                                  f"device id {dev.id!r} is used twice")
            device_ids.add(dev.id)

    worker_ids: set[str] = set()
    for i, w in enumerate(cfg.workers.workers):
        if w.id in worker_ids:
            raise ConfigError(workers_file, f"workers.{i}.id", f"worker id {w.id!r} is used twice")
        worker_ids.add(w.id)
        for lang in w.languages:
            if lang not in langs:
                raise ConfigError(workers_file, f"workers.{i}.languages.{lang}",
                                  "language is not defined in languages.yaml")
        for sk in w.skills:
            if sk not in skills:
                raise ConfigError(workers_file, f"workers.{i}.skills.{sk}",
                                  "skill is not defined in skills.yaml")
        for s in w.sites:
            if s not in site_ids:
                raise ConfigError(workers_file, f"workers.{i}.sites",
                                  f"site {s!r} is not defined in sites.yaml")

    for name, wf in cfg.routing.workflows.items():
        for k, step in enumerate(wf.steps):
            t = step.target
            key = f"workflows.{name}.steps.{k}.target"
            if t.language not in (None, "case") and t.language not in langs:
                raise ConfigError(routing_file, f"{key}.language",
                                  f"language {t.language!r} is not defined in languages.yaml")
            if t.site not in (None, "case") and t.site not in site_ids:
                raise ConfigError(routing_file, f"{key}.site",
                                  f"site {t.site!r} is not defined in sites.yaml")
            if isinstance(t.skills, dict):
                for sk in t.skills:
                    if sk not in skills:
                        raise ConfigError(routing_file, f"{key}.skills.{sk}",
                                          "skill is not defined in skills.yaml")

    tokens_file = str(directory / "tokens.yaml")
    seen: set[str] = set()
    for i, entry in enumerate(cfg.tokens.tokens):
        if entry.role is Role.device and entry.subject not in device_ids:
            raise ConfigError(tokens_file, f"tokens.{i}.subject",
                              f"device {entry.subject!r} is not defined in sites.yaml")
        if entry.role in _WORKER_ROLES and entry.subject not in worker_ids:
            raise ConfigError(tokens_file, f"tokens.{i}.subject",
                              f"worker {entry.subject!r} is not defined in workers.yaml")
        if entry.token and entry.token in seen:
            raise ConfigError(tokens_file, f"tokens.{i}.token", "token is used twice")
        if entry.token:
            seen.add(entry.token)


_WORKER_ROLES = {Role.agent, Role.specialist, Role.remote_worker}


def workflow_for(cfg: RoutingFile, site: SiteConfig | None, channel: Channel,
                 requested: str | None) -> str:
    if requested:
        return requested
    if site is not None and site.workflow:
        return site.workflow
    return cfg.channel_workflows.get(channel, cfg.default_workflow)
