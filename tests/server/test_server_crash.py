"""``kill -9`` of a running ``mcuota serve`` after acknowledged reports: on restart nothing that was
acknowledged is lost, the rollouts are where they were, and an interrupted upload leaves no orphan."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import LiveServer, Ops

from mcuota.image.keys import PrivateKey

pytest_plugins = ["server_fixtures"]


def mcuota_exe() -> list[str]:
    exe = Path(sys.executable).with_name("mcuota")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mcuota.cli.main"]


class ServeProcess:
    """``mcuota serve`` in a child process on a free port, its JSON log lines collected."""

    def __init__(self, data_dir: Path, log: Path, *extra: str) -> None:
        self.log = log
        self.handle = self.log.open("ab")
        self.proc = subprocess.Popen([*mcuota_exe(), "serve", "--data-dir", str(data_dir), "--port", "0",
                                      "--no-mqtt", "--rate-limit", "0", *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.handle)
        self.url = self._wait_until_listening()
        self._wait_until_healthy()

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def _wait_until_listening(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mcuota serve exited {self.proc.returncode}:\n{self.log.read_text()}")
            urls = [e["url"] for e in self.events() if e.get("event") == "listening"]
            if urls:
                return str(urls[-1])
            time.sleep(0.05)
        raise AssertionError(f"mcuota serve did not start:\n{self.log.read_text()}")

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("mcuota serve never became healthy")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.handle.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.handle.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(data_dir: Path, *extra: str) -> ServeProcess:
        proc = ServeProcess(data_dir, tmp_path / f"serve-{len(started)}.log", *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_kill_9_loses_nothing_acknowledged(*, database: str, tmp_path: Path,
                                           serve: Callable[..., ServeProcess], request: pytest.FixtureRequest,
                                           signing_key: PrivateKey,
                                           image: Callable[..., bytes]) -> None:
    data_dir = tmp_path / "data"
    extra = []
    if database == "postgres":
        extra = ["--database-url", request.getfixturevalue("postgres").new_database()]
    first = serve(data_dir, *extra)
    key = (data_dir / "admin-api-key").read_text().strip()
    ops = Ops(LiveServer(first.url, data_dir, key, None))  # type: ignore[arg-type]
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    tokens = {f"SN{i}": ops.device(f"SN{i}") for i in range(6)}
    advancing = ops.rollout(release["id"], stages=[50, 100], min_attempts=100, advance_success_rate=1.0)
    jobs = {s: ops.checkin(s, t) for s, t in tokens.items()}
    offered = sorted(s for s, j in jobs.items() if j)
    assert len(offered) == 3
    acknowledged: dict[str, str] = {}
    for serial in offered:
        for state in ("downloading", "downloaded", "installing", "rebooting", "success"):
            assert ops.report(release["id"], state, tokens[serial])["changed"]
        acknowledged[serial] = "success"
    assert ops.status(advancing["id"])["stage"] == 2
    second_wave = sorted(s for s in tokens if s not in offered and ops.checkin(s, tokens[s]))
    assert ops.report(release["id"], "installing", tokens[second_wave[0]])["state"] == "installing"
    acknowledged[second_wave[0]] = "installing"
    paused = ops.rollout(release["id"], stages=[100])
    ops.ok("POST", f"/api/v1/rollouts/{paused['id']}/pause")
    before = {"advancing": ops.status(advancing["id"]), "paused": ops.status(paused["id"])}
    audit_before = len(ops.ok("GET", "/api/v1/audit", params={"limit": 1000}))

    first.kill9()
    # an upload cut short between blob and row: a blob nobody refers to, and a half-written temporary
    orphan = hashlib.sha256(b"orphan").hexdigest()
    (data_dir / "blobs" / orphan[:2]).mkdir(exist_ok=True)
    (data_dir / "blobs" / orphan[:2] / orphan).write_bytes(b"orphan")
    (data_dir / "blobs" / "tmp" / "deadbeef.tmp").write_bytes(b"half")

    second = serve(data_dir, *extra)
    assert (data_dir / "admin-api-key").read_text().strip() == key      # not replaced on restart
    ops = Ops(LiveServer(second.url, data_dir, key, None))  # type: ignore[arg-type]
    for serial, state in acknowledged.items():
        device = ops.ok("GET", f"/api/v1/devices/{serial}")
        assert device["attempts"][-1]["state"] == state, serial
        if state == "success":
            assert device["version"] == "2.0.0"
    after = {"advancing": ops.status(advancing["id"]), "paused": ops.status(paused["id"])}
    for name in after:
        for field in ("state", "stage", "admitted", "succeeded", "failed", "counts"):
            assert after[name][field] == before[name][field], (name, field)
    assert after["paused"]["state"] == "paused"
    assert len(ops.ok("GET", "/api/v1/audit", params={"limit": 1000})) == audit_before
    assert not (data_dir / "blobs" / orphan[:2] / orphan).exists()
    assert list((data_dir / "blobs" / "tmp").iterdir()) == []
    assert ops.as_device(tokens[offered[0]]).get(f"/api/v1/device/artifacts/{release['id']}").content == \
        image("2.0.0")
    assert any(e.get("event") == "listening" for e in second.events())
    assert os.stat(data_dir / "admin-api-key").st_mode & 0o777 == 0o600
