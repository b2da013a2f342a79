"""Findings: `baton router` started with every demo token live (admin included); setting one
BATON_TOKEN_* left the others working; an empty variable fell back to the demo value; short
environment tokens were accepted; docker-compose.yml defaulted the router's MQTT password to
the demo value, which the committed password file accepted.

Now outside the demo the router exits 2 naming each variable to set; `baton secrets
generate` writes a 0600 env file and a matching Mosquitto password file, with which it
starts; `baton check-config --production` reports the same; compose has no secret defaults."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from router.config import load_config
from router.secrets import read_env_file
from sandbox.procs import RouterProcess

REPO = Path(__file__).resolve().parents[2]
TOKEN_ENVS = [t["token_env"] for t in
              yaml.safe_load((REPO / "config/tokens.yaml").read_text())["tokens"]]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return {**env, **extra}


def _router(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "--config", str(REPO / "config"), "router",
         "--port", "1", "--db", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=_clean_env(**env))


def _named(stderr: str) -> set[str]:
    return set(re.findall(r"refusing to start: (\S+):", stderr))


def test_router_without_secrets_exits_2_naming_every_variable(tmp_path):
    proc = _router(tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert _named(proc.stderr) == set(TOKEN_ENVS), proc.stderr
    assert "BATON_TOKEN_ADMIN: not set" in proc.stderr
    assert "baton secrets generate" in proc.stderr


def test_setting_one_token_leaves_the_others_refused(tmp_path):
    proc = _router(tmp_path, BATON_TOKEN_KEN="k" * 40)
    assert proc.returncode == 2
    assert _named(proc.stderr) == set(TOKEN_ENVS) - {"BATON_TOKEN_KEN"}


def test_empty_short_and_demo_values_are_refused(tmp_path):
    good = {name: f"{name.lower()}-{'x' * 40}" for name in TOKEN_ENVS}
    proc = _router(tmp_path, **{**good, "BATON_TOKEN_KEN": "", "BATON_TOKEN_EMMA": "short-1234",
                                "BATON_TOKEN_ADMIN": "demo-admin-token-0001"})
    assert proc.returncode == 2
    assert _named(proc.stderr) == {"BATON_TOKEN_KEN", "BATON_TOKEN_EMMA", "BATON_TOKEN_ADMIN"}
    assert "BATON_TOKEN_KEN: empty" in proc.stderr
    assert "BATON_TOKEN_EMMA: too short (10 characters; at least 32)" in proc.stderr
    assert "BATON_TOKEN_ADMIN: a demo value" in proc.stderr


def test_demo_mqtt_password_is_refused(tmp_path):
    good = {name: f"{name.lower()}-{'x' * 40}" for name in TOKEN_ENVS}
    for password, why in ((None, "not set"), ("demo-router-mqtt-0001", "a demo value")):
        env = {**good, "BATON_MQTT_HOST": "127.0.0.1"}
        if password:
            env["BATON_MQTT_PASSWORD"] = password
        proc = _router(tmp_path, **env)
        assert proc.returncode == 2
        assert f"BATON_MQTT_PASSWORD: {why}" in proc.stderr, proc.stderr


def test_generated_secrets_start_the_router_and_demo_tokens_are_dead(tmp_path):
    env_file, mq = tmp_path / "secrets.env", tmp_path / "mosquitto"
    gen = subprocess.run([sys.executable, "-m", "router.cli", "--config", str(REPO / "config"),
                          "secrets", "generate", "--env-file", str(env_file),
                          "--mosquitto-dir", str(mq)], capture_output=True, text=True,
                         timeout=60, env=_clean_env())
    assert gen.returncode == 0, gen.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env_file(env_file)
    assert set(TOKEN_ENVS) | {"BATON_MQTT_PASSWORD", "BATON_PG_PASSWORD"} <= set(values)
    assert all(len(v) >= 32 and not v.startswith("demo-") for v in values.values())
    assert len(set(values.values())) == len(values)
    passwd = (mq / "passwd").read_text()
    assert passwd.startswith("baton-router:$7$") and values["BATON_MQTT_PASSWORD"] not in passwd
    # A second run does not silently replace the deployment's secrets.
    again = subprocess.run([sys.executable, "-m", "router.cli", "secrets", "generate",
                            "--env-file", str(env_file), "--mosquitto-dir", str(mq)],
                           capture_output=True, text=True, timeout=60, env=_clean_env())
    assert again.returncode == 2 and "--force" in again.stderr

    check = subprocess.run([sys.executable, "-m", "router.cli", "check-config", "--production",
                            "--env-file", str(env_file)], capture_output=True, text=True,
                           timeout=60, env=_clean_env(), cwd=REPO)
    assert check.returncode == 0, check.stderr
    bad = subprocess.run([sys.executable, "-m", "router.cli", "check-config", "--production"],
                         capture_output=True, text=True, timeout=60, env=_clean_env(), cwd=REPO)
    assert bad.returncode == 2 and "BATON_TOKEN_ADMIN: not set" in bad.stderr

    router = RouterProcess(REPO / "config", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
                           secrets={}, extra_args=["--env-file", str(env_file)])
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(_clean_env())
    try:
        client = router.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        assert client.get("/v1/me", headers={"Authorization": "Bearer demo-admin-token-0001"}
                          ).status_code == 401
        me = client.get("/v1/me", headers={"Authorization":
                                           f"Bearer {values['BATON_TOKEN_ADMIN']}"})
        assert me.json() == {"subject": "admin", "role": "admin"}
    finally:
        client.close()
        router.stop()


def test_demo_secrets_need_the_explicit_flag(tmp_path):
    """The harness and local try-outs run with --demo-secrets; it says so in the log."""
    router = RouterProcess(REPO / "config", f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
                           log_file=tmp_path / "router.log")
    client = router.start()
    try:
        assert client.get("/v1/me", headers={"Authorization": "Bearer demo-admin-token-0001"}
                          ).status_code == 200
    finally:
        client.close()
        router.stop()
    assert "running with demo secrets" in (tmp_path / "router.log").read_text()


def test_compose_has_no_secret_defaults():
    text = (REPO / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?])?([^}]*)\}", text)
    secret = [(n, op) for n, op, _ in uses if re.search("PASSWORD|TOKEN|SECRET", n)]
    assert secret, "compose names no secret at all?"
    assert all(op == ":?" for _, op in secret), secret
    assert "demo-" not in text
    compose = yaml.safe_load(text)
    assert ".env" in compose["services"]["router"]["env_file"]
    example = (REPO / ".env.example").read_text()
    for name in [*TOKEN_ENVS, "BATON_MQTT_PASSWORD", "BATON_PG_PASSWORD"]:
        assert re.search(rf"^{name}=$", example, re.M), name


def test_no_password_file_in_the_repository_accepts_the_demo_password():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert not [p for p in tracked if p.endswith("passwd") or p.endswith(".env")], tracked
    cfg = load_config(REPO / "config")
    assert cfg.tokens.access.wrapup_minutes == 15


def test_rotation_accepts_new_and_old_until_the_old_is_dropped(tmp_path):
    from router.mqtt.auth import device_logins
    from router.secrets import secret_problems

    cfg = load_config(REPO / "config")
    new, old = "n" * 40, "o" * 40
    env = {name: f"{name.lower()}-{'x' * 40}" for name in TOKEN_ENVS}
    env["BATON_TOKEN_ROBOT_1"] = f"{new},{old}"
    tokens = cfg.resolved_tokens(env)
    assert tokens[new].subject == tokens[old].subject == "robot-1"
    assert device_logins(cfg, env)["robot-1"][1] == new  # the broker gets the new one
    assert secret_problems(cfg, env, mqtt=False) == []
    env["BATON_TOKEN_ROBOT_1"] = f"{new},demo-robot-1-token-0001"
    assert [p.name for p in secret_problems(cfg, env, mqtt=False)] == ["BATON_TOKEN_ROBOT_1"]
