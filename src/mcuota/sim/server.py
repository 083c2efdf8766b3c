"""An update service for a rehearsal: ``mcuota serve`` started as a child process with embedded
defaults (SQLite and the embedded MQTT broker in a temporary data directory), or one already running.

A child process rather than a thread: the simulated fleet is CPU-bound Python, and a server sharing its
interpreter would be measured through the same GIL; a separate process is also what an operator runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mcuota.errors import McuotaError
from mcuota.netutil import free_port


@dataclass(frozen=True)
class ServerHandle:
    url: str
    api_key: str
    mqtt: str = ""
    """``host:port`` of the broker the server's publisher uses ("" when MQTT is off or unknown)."""


class ServerProcess:
    """``with ServerProcess(data_dir) as server: server.handle`` — started, healthy, stopped at exit."""

    def __init__(self, data_dir: Path, *, mqtt: bool = True, workers: int = 1, extra: tuple[str, ...] = (),
                 startup_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.mqtt_port = free_port() if mqtt else 0
        self.workers = workers
        self.extra = extra
        self.startup_timeout = startup_timeout
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.handle = ServerHandle("", "")

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "mcuota.cli.main", "serve", "--data-dir", str(self.data_dir),
                   "--port", str(self.port), "--rate-limit", "0", "--allow-unsigned", "--log-format", "text"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        command += ["--mqtt-port", str(self.mqtt_port)] if self.mqtt_port else ["--no-mqtt"]
        return [*command, *self.extra]

    def start(self) -> ServerHandle:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise McuotaError(f"the update server exited at start-up ({self.process.returncode}): "
                                  f"{self._last_log_line()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise McuotaError(f"the update server did not become healthy within {self.startup_timeout:g} s")
        key = (self.data_dir / "admin-api-key").read_text(encoding="utf-8").strip()
        mqtt = f"127.0.0.1:{self.mqtt_port}" if self.mqtt_port else ""
        self.handle = ServerHandle(url, key, mqtt)
        return self.handle

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
