"""A real Mosquitto on a free port, for tests and benchmarks that must control (and kill)
their broker. Persistence and the per-client queues are set for zero loss: Mosquitto's
default ``max_queued_messages 100`` silently drops messages for an offline client."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from sandbox.procs import free_port


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None


class MosquittoProcess:
    def __init__(self, workdir: str | Path, port: int | None = None, *,
                 passwd: Path | None = None, acl: Path | None = None, extra: str = "",
                 autosave_s: int = 1, bind_client_ids: bool = False):
        """``bind_client_ids``: Mosquitto's ``use_username_as_clientid`` as in production
        (config/mosquitto.conf); off by default because tests open second connections
        under one username (probes, spies), which it would take over."""
        self.bind_client_ids = bind_client_ids
        self.autosave_s = autosave_s
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.passwd, self.acl, self.extra = passwd, acl, extra
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    def conf(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1",
                 "persistence true", f"persistence_location {self.dir}/",
                 f"autosave_interval {self.autosave_s}", "autosave_on_changes false",
                 "max_queued_messages 200000", "max_inflight_messages 100",
                 "message_size_limit 1048576", "max_keepalive 120", "set_tcp_nodelay true",
                 f"log_dest file {self.log}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information"]
        if self.passwd is not None:
            lines += ["allow_anonymous false", f"password_file {self.passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            lines.append(f"acl_file {self.acl}")
        if self.bind_client_ids:
            lines.append("use_username_as_clientid true")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot write here
        return "\n".join(lines) + "\n" + self.extra

    def start(self, timeout: float = 10.0) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto not found: apt-get install mosquitto")
        path = self.dir / "mosquitto.conf"
        path.write_text(self.conf())
        self.proc = subprocess.Popen([binary, "-c", str(path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}"
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto did not listen on {self.port} in {timeout} s")
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: nothing is saved since the last autosave, as in a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
