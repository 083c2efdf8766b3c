"""Retries of failed devices within a rollout, per-device counting for the halt rule, "completed"
rollouts, and a revert reported over the seed-002 HTTP flow. Releases are seed 001 stm32-header
images of the sample application, on a server that accepts unsigned releases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import SyncAsgiClient, asgi_client

from mcuota.boot.stm32_header import version_word
from mcuota.image.stm32_header import build_stm32_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.server.app import create_app
from mcuota.server.settings import Settings

pytest_plugins = ["server_fixtures"]
BOARD = "f103"


class Api:
    def __init__(self, client: SyncAsgiClient, key: str) -> None:
        self.client = client
        self.key = key
        self.tokens: dict[str, str] = {}

    def call(self, method: str, path: str, *, token: str | None = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token or self.key}"}
        return self.client.request(method, path, headers={**auth, **(headers or {})}, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json()

    def release(self, version: str = "2.0.0") -> int:
        payload = sample_path("stm32-header-f103", version, "bin").read_bytes()
        data = build_stm32_image(payload, version_word(ImageVersion.parse(version)))
        return int(self.ok("POST", "/api/v1/releases", 201, params={"board": BOARD}, content=data)["id"])

    def devices(self, *serials: str) -> None:
        for serial in serials:
            self.tokens[serial] = self.ok("POST", "/api/v1/devices", 201, json={
                "serial": serial, "board": BOARD, "version": "1.0.0"})["token"]

    def checkin(self, serial: str) -> Any:
        return self.ok("POST", "/api/v1/device/checkin", token=self.tokens[serial],
                       json={"serial": serial, "board": BOARD, "version": "1.0.0"})["job"]

    def report(self, serial: str, release_id: int, state: str) -> Any:
        return self.ok("POST", "/api/v1/device/reports", token=self.tokens[serial],
                       json={"release_id": release_id, "state": state})

    def attempts(self, serial: str) -> list[dict[str, Any]]:
        return list(self.ok("GET", f"/api/v1/devices/{serial}")["attempts"])


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", rate_limit=0, require_signatures=False)
    with asgi_client(create_app(settings)) as client:
        yield Api(client, (settings.data_dir / "admin-api-key").read_text().strip())


def test_a_failed_device_is_retried_until_max_attempts(api: Api) -> None:
    rid = api.release()
    rollout = api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": rid, "stages": [100],
                                                           "max_attempts": 2, "min_attempts": 100})
    assert (rollout["max_attempts"], rollout["retried"], rollout["complete"]) == (2, 0, False)
    api.devices("SN1")
    first = api.checkin("SN1")
    api.report("SN1", rid, "failure")
    assert api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")["failed"] == 1
    second = api.checkin("SN1")
    assert second["release_id"] == rid
    assert second["attempt_id"] != first["attempt_id"]
    assert api.checkin("SN1") == second                   # re-asking returns the open retry, no third
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["retried"], status["failed"], status["in_progress"], status["admitted"]) == (1, 0, 1, 1)
    api.report("SN1", rid, "failure")
    assert api.checkin("SN1") is None                     # both attempts used
    attempts = api.attempts("SN1")
    assert [a["state"] for a in attempts] == ["failure", "failure"]
    assert "attempt 2 of 2" in attempts[1]["history"][0]["reason"]
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["state"], status["complete"], status["failed"], status["retried"]) == (
        "completed", True, 1, 1)


def test_a_reverted_device_is_never_retried(api: Api) -> None:
    rid = api.release()
    rollout = api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": rid, "stages": [100]})
    api.devices("SN1", "SN2")
    api.checkin("SN1")
    api.report("SN1", rid, "success")
    api.report("SN1", rid, "reverted")
    assert api.ok("POST", "/api/v1/device/checkin", token=api.tokens["SN1"],
                  json={"serial": "SN1", "board": BOARD, "version": "1.0.0"})["update"] is False
    assert [a["state"] for a in api.attempts("SN1")] == ["reverted"]
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["complete"], status["state"]) == (False, "active")    # SN2 has not had its turn
    api.checkin("SN2")
    api.report("SN2", rid, "success")
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["complete"], status["state"], status["succeeded"], status["failed"]) == (
        True, "completed", 1, 1)


def test_halt_rule_counts_devices_by_their_last_attempt(api: Api) -> None:
    rid = api.release()
    rollout = api.ok("POST", "/api/v1/rollouts", 201, json={
        "release_id": rid, "stages": [100], "min_attempts": 2, "halt_failure_rate": 0.5})
    api.devices("SN1", "SN2", "SN3")
    api.checkin("SN1")
    api.report("SN1", rid, "failure")
    api.checkin("SN1")
    api.report("SN1", rid, "success")     # counted per attempt this would be 1 of 2 failed: a halt
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["state"], status["succeeded"], status["failed"], status["retried"]) == ("active", 1, 0, 1)
    assert (status["counts"]["success"], status["counts"]["failure"]) == (1, 0)
    api.checkin("SN2")
    api.report("SN2", rid, "failure")     # one device of two failed: the threshold is reached
    status = api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")
    assert (status["state"], status["failed"]) == ("halted", 1)
    assert "1 of 2" in status["reason"]
    assert api.checkin("SN2") is None     # a halted rollout retries nobody
    assert api.checkin("SN3") is None


def test_max_attempts_is_bounded(api: Api) -> None:
    rid = api.release()
    for bad in (0, 11):
        response = api.call("POST", "/api/v1/rollouts", json={"release_id": rid, "max_attempts": bad})
        assert response.status_code == 422, response.text
    assert api.ok("GET", "/api/v1/rollouts") == []
    one = api.ok("POST", "/api/v1/rollouts", 201,
                 json={"release_id": rid, "stages": [100], "max_attempts": 1})
    api.devices("SN1")
    api.checkin("SN1")
    api.report("SN1", rid, "failure")
    assert api.checkin("SN1") is None
    assert api.ok("GET", f"/api/v1/rollouts/{one['id']}")["state"] == "completed"


# --- the seed-002 HTTP result with a Reason ------------------------------------------------------------

def _seed002_result(api: Api, serial: str, body: dict[str, Any], status: int = 200) -> Any:
    token = api.tokens[serial]
    job = api.ok("GET", f"/seed002/{serial}/ota_update.json", token=token)
    assert job["Message"] == "Update Available"
    assert api.call("GET", job["File"], token=token, headers={"Range": "bytes=0-4095"}).status_code == 206
    return api.ok("POST", job["File"], status, token=token, json={"File": job["File"], **body})


def test_seed002_revert_after_a_success_is_recorded_as_reverted(api: Api) -> None:
    rid = api.release()
    rollout = api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": rid, "stages": [100]})
    api.devices("SN1")
    token = api.tokens["SN1"]
    assert _seed002_result(api, "SN1", {"Message": "Success"})["State"] == "success"
    assert api.attempts("SN1")[0]["state"] == "success"
    name = api.ok("GET", f"/api/v1/releases/{rid}")["file_name"]
    answer = api.ok("POST", f"/seed002/SN1/{name}", token=token,
                    json={"Message": "Failure", "File": f"/seed002/SN1/{name}",
                          "Reason": "reverted: new image did not confirm itself"})
    assert answer == {"Message": "Result Received", "State": "reverted"}
    attempt = api.attempts("SN1")[0]
    assert attempt["state"] == "reverted"
    assert [h["state"] for h in attempt["history"]] == ["offered", "downloading", "success", "reverted"]
    assert attempt["reason"] == "reverted: new image did not confirm itself"
    assert api.ok("GET", f"/api/v1/rollouts/{rollout['id']}")["failed"] == 1
    assert api.ok("GET", "/seed002/SN1/ota_update.json", token=token)["Message"] == "No Update Available"


def test_seed002_failure_without_revert_is_retried(api: Api) -> None:
    api.release()
    api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": 1, "stages": [100]})
    api.devices("SN1")
    failed = _seed002_result(api, "SN1", {"Message": "Failure", "Reason": "flash write error"})
    assert failed["State"] == "failure"
    assert _seed002_result(api, "SN1", {"Message": "Success"})["State"] == "success"
    assert [a["state"] for a in api.attempts("SN1")] == ["failure", "success"]


def test_seed002_reason_must_be_text(api: Api) -> None:
    api.release()
    api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": 1, "stages": [100]})
    api.devices("SN1")
    answer = _seed002_result(api, "SN1", {"Message": "Failure", "Reason": ["reverted"]}, status=400)
    assert answer["error"] == "invalid_result"
    assert api.attempts("SN1")[0]["state"] == "downloading"
