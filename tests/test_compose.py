"""docker-compose.yml and the Dockerfile agree with each other, with config/ and with the code.

Docker itself is not needed: the files are parsed, the names cross-checked against the
sources and config/, and config/mosquitto.conf is loaded by a real (Debian) mosquitto.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import free_port, require

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CONFIG = ROOT / "config"
SOURCE_DIRS = ("router", "endpoints", "edge", "protocol", "common", "sandbox")

# --- parsing ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose-style ${VAR:-default} with the defaults (the environment is not consulted)."""
    if isinstance(value, str):
        value = _VAR.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


def _load_compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


COMPOSE = _load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return _dockerfile_cmd()
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _flag(cmd: list[str], name: str) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _container_ports(service: dict[str, Any]) -> set[int]:
    out: set[int] = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.add(int(p["target"]))
        else:
            out.add(int(str(p).split("/")[0].rsplit(":", 1)[-1]))
    return out


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) pairs of the service's volumes."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"])))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def _dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _dockerfile_instr(name: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in _dockerfile_lines() if ln.split(None, 1)[0].upper() == name]


def _dockerfile_cmd() -> list[str]:
    cmds = _dockerfile_instr("CMD")
    assert cmds, "Dockerfile has no CMD"
    cmd = cmds[-1]
    return json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)


def _sources_text() -> str:
    parts = []
    for d in SOURCE_DIRS:
        for f in sorted((ROOT / d).rglob("*.py")):
            parts.append(f.read_text(encoding="utf-8"))
    return "\n".join(parts)


def _yaml(name: str) -> Any:
    return yaml.safe_load((CONFIG / name).read_text(encoding="utf-8"))


def _token_envs() -> dict[str, str]:
    return {t["subject"]: t["token_env"] for t in _yaml("tokens.yaml")["tokens"] if t.get("token_env")}


def _edge_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SERVICES.items() if "edge-sim" in _command(s)}


def _env_names() -> list[tuple[str, str]]:
    return [
        (svc, name)
        for svc in ("router", *sorted(_edge_services()))
        for name in sorted(_env(SERVICES.get(svc, {})))
        if name.startswith("BATON_")
    ]


# --- tests -------------------------------------------------------------------------------------


def test_the_four_services_exist():
    assert {"mosquitto", "postgres", "router", "edge-sim"} <= set(SERVICES)


def test_dockerfile_base_is_python_311_and_runs_as_non_root():
    froms = _dockerfile_instr("FROM")
    assert froms, "Dockerfile has no FROM"
    # Follow the final stage through the stages it is built on (FROM base AS router).
    aliases = {f.split()[-1]: f.split()[0] for f in froms if " AS " in f.upper()}
    base = froms[-1].split()[0]
    while base in aliases:
        base = aliases[base]
    assert base.startswith("python:3.11"), f"final stage is based on {base}, expected python:3.11*"
    users = _dockerfile_instr("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "image must run as non-root"


def test_router_published_port_matches_its_command():
    cmd = _command(SERVICES["router"])
    assert cmd[:2] == ["baton", "router"], cmd
    assert _flag(cmd, "--host") == "0.0.0.0", "router must listen on all interfaces in a container"
    port = _flag(cmd, "--port")
    assert port is not None, f"router command has no --port: {cmd}"
    assert int(port) in _container_ports(SERVICES["router"]), (
        f"router listens on {port} but publishes {sorted(_container_ports(SERVICES['router']))}")


def test_services_built_here_use_this_dockerfile():
    for name in ("router", *_edge_services()):
        build = SERVICES[name].get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name} must be built from the repository root"


def test_dependencies_exist_and_health_conditions_have_healthchecks():
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or {}
        items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        for dep, cond in items:
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            if (cond or {}).get("condition") == "service_healthy":
                assert SERVICES[dep].get("healthcheck"), f"{name} waits for {dep} healthy, which has no healthcheck"
    assert (SERVICES["router"]["depends_on"]["postgres"]["condition"]) == "service_healthy"


def test_router_gets_db_url_and_config_dir_mounted_from_config():
    env = _env(SERVICES["router"])
    assert "BATON_DB_URL" in env and "BATON_CONFIG_DIR" in env, sorted(env)
    mounts = {target: source for source, target in _mounts(SERVICES["router"])}
    source = mounts.get(env["BATON_CONFIG_DIR"])
    assert source is not None, f"BATON_CONFIG_DIR={env['BATON_CONFIG_DIR']} is not a mounted path"
    assert (ROOT / source).resolve() == CONFIG, f"{source} is not the repository's config/"


@pytest.mark.parametrize(("service", "name"), _env_names())
def test_env_names_are_read_by_the_code(service: str, name: str):
    """Each BATON_* variable given to a service is read somewhere in the sources (or is a
    token_env of config/tokens.yaml, which the config loader reads by name)."""
    if name in _token_envs().values():
        return
    read = re.search(rf"""["']{name}["']""", _sources_text()) is not None
    assert read, f"{service} is given {name} but nothing in {', '.join(SOURCE_DIRS)}/ reads it"


@pytest.mark.parametrize("service", ["router", "edge-sim"])
def test_cli_accepts_the_flags_used(service: str):
    cmd = _command(SERVICES[service])
    assert cmd[0] == "baton", cmd
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from router.cli import main; sys.exit(main())", cmd[1], "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"`baton {cmd[1]} --help` failed:\n{proc.stdout}{proc.stderr}"
    for flag in (a.split("=", 1)[0] for a in cmd[2:] if a.startswith("--")):
        assert flag in proc.stdout, f"`baton {cmd[1]}` has no {flag} option:\n{proc.stdout}"


def test_edge_sim_devices_and_tokens_match_config():
    edges = _edge_services()
    assert edges, "no service runs `baton edge-sim`"
    sites = {s["id"]: {d["id"] for d in s.get("devices", [])} for s in _yaml("sites.yaml")["sites"]}
    token_envs = _token_envs()
    router_env = _env(SERVICES["router"])
    router_port = _flag(_command(SERVICES["router"]), "--port")
    for name, svc in edges.items():
        cmd, env = _command(svc), _env(svc)
        site, device, token_env = (_flag(cmd, f) for f in ("--site", "--device", "--token-env"))
        assert site in sites, f"{name}: site {site} is not in config/sites.yaml"
        assert device in sites[site], f"{name}: device {device} is not at site {site} in config/sites.yaml"
        assert token_env == token_envs.get(device), (
            f"{name}: --token-env {token_env}, but config/tokens.yaml has {token_envs.get(device)} for {device}")
        assert token_env in env, f"{name}: {token_env} is not in its environment"
        assert router_env.get(token_env) == env[token_env], (
            f"router and {name} must see the same {token_env} (the router checks the device's token)")
        url = urlsplit(_flag(cmd, "--router-url") or env.get("BATON_ROUTER_URL", ""))
        assert (url.hostname, str(url.port)) == ("router", router_port), f"{name}: router URL {url.geturl()}"
        if "BATON_ROUTER_URL" in env:
            assert urlsplit(env["BATON_ROUTER_URL"]) == url, f"{name}: --router-url and BATON_ROUTER_URL differ"


def test_router_db_url_matches_postgres_service():
    url = urlsplit(_env(SERVICES["router"])["BATON_DB_URL"])
    pg = _env(SERVICES["postgres"])
    user = pg.get("POSTGRES_USER", "postgres")
    assert url.scheme == "postgresql+asyncpg", url.scheme
    assert url.hostname == "postgres" and (url.port or 5432) == 5432, url.netloc
    assert url.username == user, f"router connects as {url.username}, postgres creates {user}"
    assert url.password == pg.get("POSTGRES_PASSWORD"), "router's password differs from POSTGRES_PASSWORD"
    assert url.path.lstrip("/") == pg.get("POSTGRES_DB", user), "router's database differs from POSTGRES_DB"


def _mosquitto_conf_source() -> Path:
    mounts = {target: source for source, target in _mounts(SERVICES["mosquitto"])}
    source = mounts.get("/mosquitto/config/mosquitto.conf")
    assert source, "mosquitto service does not mount /mosquitto/config/mosquitto.conf"
    return (COMPOSE_FILE.parent / source).resolve()


def test_mosquitto_config_file_mounted_exists():
    path = _mosquitto_conf_source()
    assert path.is_file(), f"{path} is mounted into mosquitto but does not exist"
    listeners = [ln.split()[1] for ln in path.read_text().splitlines() if ln.startswith("listener ")]
    assert "1883" in listeners, f"mosquitto.conf listens on {listeners}, compose expects 1883"


def test_mosquitto_config_is_accepted_by_mosquitto(tmp_path: Path):
    """Loads the real file (listener moved to a free port, persistence to tmp) in mosquitto,
    with the password file `baton secrets generate` writes (none is committed)."""
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    require(mosquitto is not None, "mosquitto", "run scripts/setup.sh (apt-get install mosquitto)")
    port = free_port()
    mounts = {target: (COMPOSE_FILE.parent / source).resolve()
              for source, target in _mounts(SERVICES["mosquitto"])}
    generated = subprocess.run(
        [sys.executable, "-m", "router.cli", "secrets", "generate", "--env-file",
         str(tmp_path / ".env"), "--mosquitto-dir", str(tmp_path / "mosquitto")],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert generated.returncode == 0, generated.stderr
    mounts["/mosquitto/config/passwd"] = tmp_path / "mosquitto" / "passwd"
    lines = []
    for ln in _mosquitto_conf_source().read_text().splitlines():
        if ln.startswith("listener "):
            ln = f"listener {port} 127.0.0.1"
        elif ln.startswith("persistence_location "):
            ln = f"persistence_location {tmp_path}/"
        elif ln.split(" ", 1)[0] in ("password_file", "acl_file"):
            key, path = ln.split(" ", 1)
            assert path in mounts, f"{key} {path} is not mounted into the mosquitto service"
            assert mounts[path].is_file(), f"{mounts[path]} (mounted at {path}) does not exist"
            ln = f"{key} {mounts[path]}"
        lines.append(ln)
    if os.geteuid() == 0:
        lines.append("user root")  # else mosquitto drops to 'mosquitto', which cannot write tmp_path
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto rejected the config (exit {proc.returncode}):\n{proc.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start listening within 10 s")
                time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _stages() -> dict[str, list[str]]:
    """Dockerfile stage name -> its instructions (continuations joined, comments dropped)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for ln in _dockerfile_lines():
        if ln.split(None, 1)[0].upper() == "FROM":
            current = stages.setdefault(ln.split()[-1] if " AS " in ln.upper() else "", [])
        current.append(ln)
    return stages


def test_the_router_image_has_no_edge_libraries_and_the_edge_image_has_them():
    stages = _stages()
    assert {"router", "edge"} <= set(stages), f"Dockerfile stages: {sorted(stages)}"
    installs = {name: " ".join(ln for ln in lines if "pip install" in ln)
                for name, lines in stages.items()}
    assert re.search(r"pip install \.(\s|$)", installs["router"]), installs["router"]
    assert "[edge]" not in installs["router"]
    assert ".[edge]" in installs["edge"], installs["edge"]
    assert list(stages)[-1] == "router", "the default (last) stage must be the router"
    targets = {n: (s.get("build") or {}).get("target") for n, s in SERVICES.items()
               if isinstance(s.get("build"), dict)}
    assert targets.get("router") == "router", targets
    for name in _edge_services():
        assert targets.get(name) == "edge", f"{name} runs the edge: build target edge"
