"""The server's core over real HTTP (uvicorn on a free port), each test on SQLite and on PostgreSQL:
staged rollouts from canary to everyone with late joiners, the automatic halt, byte-identical Range
downloads, and concurrent duplicate reports and check-ins that never produce a 5xx."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from server_helpers import LiveServer, Ops

from mcuota.image.keys import PrivateKey

pytest_plugins = ["server_fixtures"]


def test_staged_rollout_from_canary_to_everyone(live_server: LiveServer, signing_key: PrivateKey,
                                                 image: Callable[..., bytes]) -> None:
    ops = Ops(live_server)
    ops.trust(signing_key)
    data = image("2.0.0")
    release = ops.upload(data)
    devices = {f"SN{i:03d}": ops.device(f"SN{i:03d}", tags=("lab",)) for i in range(20)}
    other = ops.device("OTHER", tags=("field",))
    rollout = ops.rollout(release["id"], tags=["lab"], stages=[10, 50, 100], min_attempts=100,
                          advance_success_rate=1.0)
    assert (rollout["targets"], rollout["stage_cap"]) == (20, 2)

    def check_all() -> dict[str, dict[str, object]]:
        jobs = {s: ops.checkin(s, t) for s, t in devices.items()}
        return {s: j for s, j in jobs.items() if j is not None}

    canaries = check_all()
    assert len(canaries) == 2
    for serial, job in canaries.items():
        token = devices[serial]
        assert ops.download(str(job["url"]), token) == data
        for state in ("downloaded", "installing", "rebooting", "success"):
            ops.report(int(str(job["release_id"])), state, token)
    status = ops.status(rollout["id"])
    assert (status["stage"], status["stage_cap"], status["succeeded"]) == (2, 10, 2)

    second = check_all()
    assert len(second) == 8                     # the two canaries now run 2.0.0
    for serial, job in second.items():
        ops.report(int(str(job["release_id"])), "success", devices[serial])
    assert ops.status(rollout["id"])["stage"] == 3

    devices["LATE"] = ops.device("LATE", tags=("lab",))   # registered after the rollout started
    third = check_all()
    assert set(third) == set(devices) - set(canaries) - set(second)
    assert "LATE" in third
    assert ops.checkin("OTHER", other) is None                # not targeted: no "lab" tag
    final = ops.status(rollout["id"])
    assert (final["admitted"], final["targets"], final["state"]) == (21, 21, "active")


def test_rollout_halts_itself_on_failures(live_server: LiveServer, signing_key: PrivateKey,
                                          image: Callable[..., bytes]) -> None:
    ops = Ops(live_server)
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    devices = {f"D{i}": ops.device(f"D{i}") for i in range(8)}
    rollout = ops.rollout(release["id"], stages=[50, 100], min_attempts=4, halt_failure_rate=0.5)
    jobs = {s: ops.checkin(s, t) for s, t in devices.items()}
    offered = [s for s, j in jobs.items() if j is not None]
    assert len(offered) == 4
    for serial, state in zip(offered, ("success", "failure", "reverted", "failure"), strict=True):
        ops.report(release["id"], state, devices[serial])
    status = ops.status(rollout["id"])
    assert status["state"] == "halted"
    assert "halt threshold" in status["reason"]
    assert (status["succeeded"], status["failed"]) == (1, 3)
    waiting = [s for s in devices if s not in offered]
    assert all(ops.checkin(s, devices[s]) is None for s in waiting)
    assert ops.ok("POST", f"/api/v1/rollouts/{rollout['id']}/resume")["state"] == "active"
    audit = ops.ok("GET", "/api/v1/audit")
    assert any(e["action"] == "rollout.halt" and e["actor"] == "server" for e in audit)


def test_range_download_is_byte_identical(live_server: LiveServer, signing_key: PrivateKey,
                                          image: Callable[..., bytes]) -> None:
    ops = Ops(live_server)
    ops.trust(signing_key)
    data = image("3.1.4")
    release = ops.upload(data)
    token = ops.device("SN1")
    ops.rollout(release["id"], stages=[100])
    job = ops.checkin("SN1", token)
    assert job["sha256"] == hashlib.sha256(data).hexdigest() == release["sha256"]
    for step in (4096, 1000):
        assert ops.download(job["url"], token, step) == data
    history = ops.ok("GET", "/api/v1/devices/SN1")["attempts"][0]["history"]
    assert [h["state"] for h in history] == ["offered", "downloading"]   # seen by the server itself


def test_concurrent_duplicate_reports_and_checkins(live_server: LiveServer, signing_key: PrivateKey,
                                                   image: Callable[..., bytes]) -> None:
    ops = Ops(live_server)
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    token = ops.device("SN1")
    ops.rollout(release["id"], stages=[100])
    client = ops.as_device(token)
    body = {"serial": "SN1", "board": "f407", "version": "1.0.0"}
    with ThreadPoolExecutor(8) as pool:
        checkins = list(pool.map(lambda _: client.post("/api/v1/device/checkin", json=body), range(16)))
    assert {r.status_code for r in checkins} == {200}
    assert len({r.json()["job"]["attempt_id"] for r in checkins}) == 1
    states = ["downloading", "downloaded", "success", "success", "failure", "installing"] * 4
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda s: client.post(
            "/api/v1/device/reports", json={"release_id": release["id"], "state": s}), states))
    statuses = {r.status_code for r in reports}
    assert statuses <= {200, 409}, [r.text for r in reports if r.status_code not in (200, 409)]
    final = ops.ok("GET", "/api/v1/devices/SN1")["attempts"][0]
    assert final["state"] in ("success", "failure")
    assert all(r.json()["error"] == "conflicting_report" for r in reports if r.status_code == 409)
    terminal = [h["state"] for h in final["history"] if h["state"] in ("success", "failure")]
    assert len(terminal) == 1                   # one final state, recorded once
