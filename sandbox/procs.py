"""Running ``baton router`` as a child process: used by tests and benchmarks that need a
real router they can kill and start again."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Headless Chromium for page tests and benchmarks: Debian's package, a fake camera and
# microphone granted without asking, WebRTC allowed over loopback.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RouterProcess:
    """``secrets``: None runs with the repository's demo tokens (``--demo-secrets``), which
    the tests and benchmarks use by name; a dict (e.g. router.secrets.generate_values) runs
    as a deployment would, with those values in the environment and no demo fallback.
    ``log_file``: the router's output goes there (else to a temporary file, ``log_path``)."""

    def __init__(self, config_dir: str | Path, db_url: str, port: int | None = None,
                 log_level: str = "warning", *, secrets: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 log_file: str | Path | None = None, scheme: str = "http"):
        self.config_dir, self.db_url = config_dir, db_url
        self.port = port or free_port()
        self.log_level = log_level
        self.secrets, self.env, self.extra_args = secrets, env or {}, extra_args or []
        self.log_file, self.scheme = log_file, scheme
        self.proc: subprocess.Popen | None = None
        # Its output goes to a file, never a pipe nobody reads: a full pipe would block the
        # router's event loop on its next log line (a flood of refused input logs a lot).
        self.log_path = Path(log_file) if log_file else \
            Path(tempfile.mkdtemp(prefix="baton-router-")) / "router.log"
        self._log = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "router.cli", "--config", str(self.config_dir), "router",
                "--port", str(self.port), "--db", self.db_url, "--log-level", self.log_level,
                *([] if self.secrets is not None else ["--demo-secrets"]), *self.extra_args]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 120.0, **client_kw) -> httpx.Client:
        """Start the router and return a client once /healthz answers. The router starts in
        ~8 s of CPU; on a shared 2-core machine under test load that took 36-40 s of wall
        time (measured on this branch and on main alike), hence the generous default."""
        env = {**os.environ, **(self.secrets or {}), **self.env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        client = httpx.Client(base_url=self.url, timeout=10, **client_kw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited with {self.proc.returncode}: "
                                   f"{self.log_text()[-4000:]}")
            try:
                if client.get("/healthz").status_code == 200:
                    return client
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"router did not answer /healthz within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class EdgeProcess:
    """``baton edge --router …`` as a child process, with ``--print-events``: its JSON event
    lines are collected (``events``) and the simulated resident types on its stdin."""

    def __init__(self, edge_config: str | Path, router_url: str, token: str, mqtt_port: int,
                 outbox: str | Path, *, extra: list[str] | None = None,
                 cwd: str | Path | None = None):
        import json
        import threading

        self._json = json
        self.events: list[dict] = []
        self.lines: list[str] = []
        self._lock = threading.Lock()
        extra = list(extra or [])
        if "--screen-port" not in extra:  # the resident's page on any free port (see events)
            extra += ["--screen-port", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "edge", "--config", str(edge_config),
             "--router", router_url, "--token", token, "--mqtt-port", str(mqtt_port),
             "--outbox", str(outbox), "--resident-stdin", "--print-events", *extra],
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True, name="edge-output").start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("{"):
                try:
                    event = self._json.loads(line)
                except ValueError:
                    continue
                with self._lock:
                    self.events.append(event)

    def say(self, lang: str, text: str) -> None:
        """The resident types a turn."""
        self.proc.stdin.write(f"{lang}: {text}\n")
        self.proc.stdin.flush()

    def wait_event(self, pred, timeout: float, what: str, after: int = 0) -> dict:
        """The first event (from index ``after``) for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                hit = next((e for e in self.events[after:] if pred(e)), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"edge: timed out waiting for {what}; its last output:\n"
                             + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
