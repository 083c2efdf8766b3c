"""``mcuota serve --workers N``: one start-up, several processes on one port, caches that agree within
their bound, admissions that stay exact when the processes race, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import BOARD, make_image

from mcuota.netutil import free_port
from mcuota.server.serve import RESTART_AFTER
from mcuota.server.ttlcache import DEFAULT_TTL

pytest_plugins = ["server_fixtures"]
MCUOTA = str(Path(sys.executable).with_name("mcuota"))


class Served:
    """``mcuota serve`` as a subprocess, its JSON log lines, and admin and device calls to it."""

    def __init__(self, data_dir: Path, workers: int, database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        database = ["--database-url", database_url] if database_url else []
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [MCUOTA, "serve", "--data-dir", str(data_dir), "--port", str(port), "--no-mqtt",
                 "--allow-unsigned", "--rate-limit", "0", "--access-log", "--workers", str(workers),
                 *database], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while sum(e.get("event") == "ready" for e in self.events()) < workers:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers did not get ready"
            time.sleep(0.05)
        self.admin_key = (data_dir / "admin-api-key").read_text().strip()

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """On a new connection each time, so the kernel may hand it to any worker."""
        headers = {"Authorization": f"Bearer {token or self.admin_key}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, (path, response.status_code, response.text)
        return response.json()

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(workers: int = 2, database_url: str | None = None) -> Served:
        served = Served(tmp_path / f"data{len(started)}", workers, database_url)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


def register(served: Served, count: int, stages: list[int]) -> tuple[int, dict[str, str]]:
    """A release, ``count`` devices running 1.0.0 and a rollout of the release; (release id, tokens)."""
    release = served.ok("POST", "/api/v1/releases", 201, params={"board": BOARD},
                        content=make_image("2.0.0", None))
    tokens = {}
    for i in range(count):
        serial = f"SN{i:03d}"
        tokens[serial] = served.ok("POST", "/api/v1/devices", 201,
                                   json={"serial": serial, "board": BOARD, "version": "1.0.0"})["token"]
    served.ok("POST", "/api/v1/rollouts", 201, json={"release_id": release["id"], "stages": stages})
    return int(release["id"]), tokens


def checkin(served: Served, serial: str, token: str) -> dict[str, Any]:
    body = {"serial": serial, "board": BOARD, "version": "1.0.0"}
    result: dict[str, Any] = served.ok("POST", "/api/v1/device/checkin", token=token, json=body)
    return result


def answered_by(served: Served, path: str, status: int) -> set[int]:
    """The workers whose access log shows ``status`` for ``path``."""
    return {e["worker"] for e in served.events()
            if e.get("msg") == "request" and e.get("path") == path and e.get("status") == status}


def until_both_workers(served: Served, path: str, status: int, request: Callable[[], httpx.Response]) -> None:
    """Repeat ``request`` on new connections until both workers answered it; every answer is ``status``."""
    for _ in range(300):
        response = request()
        assert response.status_code == status, response.text
        if answered_by(served, path, status) == {0, 1}:
            return
    pytest.fail(f"one worker answered every request to {path}: {answered_by(served, path, status)}")


def test_start_up_runs_once_and_sigterm_stops_every_worker(serve: Callable[..., Served]) -> None:
    served = serve(workers=2)
    pids = served.workers()
    assert len(pids) == 2
    events = served.events()
    assert sorted(e["worker"] for e in events if e.get("event") == "ready") == [0, 1]
    assert [e.get("msg") for e in events].count("database ready") == 1  # migrated once, in the parent
    assert sum(e.get("event") == "admin_key_created" for e in events) == 1
    assert sum(e.get("event") == "listening" for e in events) == 1
    until_both_workers(served, "/api/v1/releases", 200, lambda: served.call("GET", "/api/v1/releases"))
    assert served.stop() == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_rotated_token_is_refused_by_every_worker_within_the_cache_bound(
        serve: Callable[..., Served]) -> None:
    served = serve(workers=2)
    release_id, tokens = register(served, 1, [100])
    token = tokens["SN000"]
    assert checkin(served, "SN000", token)["update"] is True
    path = f"/api/v1/device/artifacts/{release_id}"

    def ranged(secret: str) -> Callable[[], httpx.Response]:
        return lambda: served.call("GET", path, token=secret, headers={"Range": "bytes=0-4095"})

    until_both_workers(served, path, 206, ranged(token))  # both workers now hold the token in memory
    rotated_at = time.monotonic()
    fresh = served.ok("POST", "/api/v1/devices/SN000/token")["token"]
    time.sleep(max(0.0, DEFAULT_TTL + 0.2 - (time.monotonic() - rotated_at)))
    until_both_workers(served, path, 401, ranged(token))
    assert ranged(fresh)().status_code == 206
    assert served.stop() == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_first_check_ins_admit_exactly_the_stage_cap(serve: Callable[..., Served], backend: str,
                                                           request: pytest.FixtureRequest) -> None:
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    served = serve(workers=2, database_url=url)
    _, tokens = register(served, 20, [10, 100])  # the 10 % stage of 20 devices admits 2
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda item: checkin(served, *item), tokens.items()))
    offered = [a["job"]["attempt_id"] for a in answers if a["update"]]
    assert len(offered) == len(set(offered)) == 2
    status = served.ok("GET", "/api/v1/rollouts/1")
    assert (status["admitted"], status["stage_cap"], status["targets"]) == (2, 2, 20)
    again = [checkin(served, serial, token) for serial, token in tokens.items()]
    assert sorted(a["job"]["attempt_id"] for a in again if a["update"]) == sorted(offered)
    assert served.stop() == 0


def test_a_full_stage_admits_every_device_once_across_workers(serve: Callable[..., Served]) -> None:
    served = serve(workers=2)
    _, tokens = register(served, 20, [100])
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda item: checkin(served, *item), list(tokens.items()) * 2))
    assert all(a["update"] for a in answers)
    assert len({a["job"]["attempt_id"] for a in answers}) == 20  # each device re-offered its own attempt
    assert served.ok("GET", "/api/v1/rollouts/1")["admitted"] == 20
    assert served.stop() == 0


def test_a_worker_that_dies_is_replaced_unless_it_died_starting(serve: Callable[..., Served]) -> None:
    """A worker killed soon after it started stops the server (a broken start-up must not loop); on a
    machine so slow that start-up took longer than RESTART_AFTER, the same kill replaces the worker."""
    began = time.monotonic()
    served = serve(workers=2)
    victim = served.workers()[1]
    os.kill(victim, signal.SIGKILL)
    if time.monotonic() - began < RESTART_AFTER:
        assert served.proc.wait(timeout=30) == 1
        failed = [e for e in served.events() if e.get("event") == "worker_failed"]
        assert [(e["worker"], e["status"]) for e in failed] == [(1, -signal.SIGKILL)]
        return
    deadline = time.monotonic() + 30
    while len(served.workers()) < 2 or victim in served.workers():
        assert time.monotonic() < deadline, "the worker was not replaced"
        time.sleep(0.05)
    assert any(e.get("event") == "worker_replaced" for e in served.events())
    assert served.stop() == 0


def test_workers_out_of_range_is_one_line(tmp_path: Path) -> None:
    for workers in ("0",):
        done = subprocess.run([MCUOTA, "serve", "--data-dir", str(tmp_path), "--no-mqtt",
                               "--workers", workers], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"mcuota: error: --workers {workers} is not between 1 and 64"]
        assert not (tmp_path / "mcuota.db").exists()
