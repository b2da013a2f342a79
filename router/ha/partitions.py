"""Partitions (config/partitions.yaml): each owns sites (with their devices) and workers, and
is led by one router at a time. A partition's RouterCore gets the configuration cut down to
what it owns, so its matching engine, queues and offers only ever see its own work."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from common.config import ConfigError, parse_file
from protocol.models import Ident
from router.config import BatonConfig, SitesFile, WorkersFile

FILE = "partitions.yaml"


class Partition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Ident
    sites: list[Ident] = Field(min_length=1)
    workers: list[Ident] = Field(default_factory=list)


class PartitionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partitions: list[Partition] = Field(min_length=1)

    def of_site(self, site: str) -> Partition | None:
        return next((p for p in self.partitions if site in p.sites), None)

    def of_worker(self, worker: str) -> Partition | None:
        return next((p for p in self.partitions if worker in p.workers), None)

    def get(self, partition_id: str) -> Partition | None:
        return next((p for p in self.partitions if p.id == partition_id), None)


def load_partitions(cfg: BatonConfig) -> PartitionsFile:
    """Read and check partitions.yaml against the configuration: every site and every
    worker in exactly one partition."""
    path = Path(cfg.directory) / FILE
    parts = parse_file(path, PartitionsFile)
    where = str(path)
    ids = [p.id for p in parts.partitions]
    if len(set(ids)) != len(ids):
        raise ConfigError(where, "partitions", "partition ids must be unique")
    for kind, known, listed in (
            ("site", {s.id for s in cfg.sites.sites}, [s for p in parts.partitions for s in p.sites]),
            ("worker", {w.id for w in cfg.workers.workers},
             [w for p in parts.partitions for w in p.workers])):
        unknown = sorted(set(listed) - known)
        if unknown:
            raise ConfigError(where, "partitions", f"unknown {kind}s {unknown}: every {kind} "
                              f"listed must be defined in {kind}s.yaml")
        twice = sorted({x for x in listed if listed.count(x) > 1})
        if twice:
            raise ConfigError(where, "partitions", f"{kind}s {twice} are in more than one "
                              "partition: give each to exactly one")
        missing = sorted(known - set(listed))
        if missing:
            raise ConfigError(where, "partitions", f"{kind}s {missing} are in no partition: "
                              "add each to exactly one (nobody would lead them)")
    return parts


def partition_login(router_user: str, partition: str) -> str:
    """The MQTT username and client id of a partition's leader (the same string, so a
    broker binding client ids to usernames binds it): ``baton-router-city``."""
    return f"{router_user}-{partition}"


def partitions_if_any(cfg: BatonConfig) -> PartitionsFile | None:
    """partitions.yaml checked, or None when the configuration has none."""
    return load_partitions(cfg) if (Path(cfg.directory) / FILE).exists() else None


def partition_config(cfg: BatonConfig, partition: Partition) -> BatonConfig:
    """The configuration a partition's core runs with: its sites and its workers."""
    sites = [s for s in cfg.sites.sites if s.id in partition.sites]
    workers = [w for w in cfg.workers.workers if w.id in partition.workers]
    return cfg.model_copy(update={"sites": SitesFile(sites=sites),
                                  "workers": WorkersFile(workers=workers)})
