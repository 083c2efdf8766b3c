"""The REST API in process (the ASGI app through httpx's transport, lifespan included): operator flows,
authentication and scopes, the JSON error body of every kind of bad input, the OpenAPI document."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from server_helpers import SyncAsgiClient, asgi_client

from mcuota.image.keys import PrivateKey
from mcuota.server.app import create_app
from mcuota.server.settings import Settings

pytest_plugins = ["server_fixtures"]
BOARD = "f407"


class Api:
    def __init__(self, client: SyncAsgiClient, key: str, data_dir: Path) -> None:
        self.client = client
        self.key = key
        self.data_dir = data_dir
        self.admin = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        headers.setdefault("Authorization", f"Bearer {token or self.key}")
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def trust(self, key: PrivateKey, board: str | None = None) -> Any:
        return self.ok("POST", "/api/v1/trust/keys", 201,
                       json={"pem": key.public().pem().decode(), "board": board})

    def upload(self, data: bytes, board: str = BOARD, **params: str) -> Any:
        return self.ok("POST", "/api/v1/releases", 201, params={"board": board, **params}, content=data)

    def device(self, serial: str, version: str = "1.0.0", board: str = BOARD,
               tags: tuple[str, ...] = ()) -> str:
        created = self.ok("POST", "/api/v1/devices", 201, json={"serial": serial, "board": board,
                                                                "version": version, "tags": list(tags)})
        return str(created["token"])

    def rollout(self, release_id: int, **body: Any) -> Any:
        return self.ok("POST", "/api/v1/rollouts", 201, json={"release_id": release_id, **body})

    def checkin(self, serial: str, token: str, version: str, board: str = BOARD) -> Any:
        return self.ok("POST", "/api/v1/device/checkin", token=token,
                       json={"serial": serial, "board": board, "version": version})

    def report(self, release_id: int, state: str, token: str, status: int = 200) -> Any:
        return self.ok("POST", "/api/v1/device/reports", status, token=token,
                       json={"release_id": release_id, "state": state})


@contextmanager
def make_api(tmp_path: Path, **overrides: Any) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", rate_limit=overrides.pop("rate_limit", 0), **overrides)
    with asgi_client(create_app(settings)) as client:
        key = (settings.data_dir / "admin-api-key").read_text().strip()
        yield Api(client, key, settings.data_dir)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(tmp_path) as made:
        yield made


@pytest.fixture
def fleet(api: Api, signing_key: PrivateKey, image: Callable[..., bytes]) -> dict[str, Any]:
    """A trusted key, release 2.0.0 rolled out to everyone, two devices on 1.0.0."""
    api.trust(signing_key)
    release = api.upload(image("2.0.0"))
    api.rollout(release["id"], stages=[100])
    return {"release": release, "tokens": {s: api.device(s) for s in ("SN1", "SN2")}}


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"] == code, body
    return dict(body)


# --- start-up --------------------------------------------------------------------------------------

def test_first_start_writes_the_admin_key_0600(api: Api) -> None:
    path = api.data_dir / "admin-api-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert api.key.startswith("mca_")
    assert api.client.get("/healthz").json()["status"] == "ok"


def test_second_start_keeps_the_key(tmp_path: Path) -> None:
    with make_api(tmp_path) as api:
        first = api.key
    with make_api(tmp_path) as api:
        assert api.key == first
        assert api.ok("GET", "/api/v1/settings")["require_signatures"] is True


def test_openapi_declares_uploads_as_octet_stream(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/releases"]["post"]["requestBody"]
    assert list(body["content"]) == ["application/octet-stream"]
    assert body["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert "/seed002/{serial}/ota_update.json" in doc["paths"]
    assert {"ApiKey", "DeviceToken"} <= set(doc["components"]["securitySchemes"])


# --- authentication and scopes ------------------------------------------------------------------

def test_missing_and_wrong_keys(api: Api) -> None:
    response = api.client.get("/api/v1/releases")
    assert_error(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(api.call("GET", "/api/v1/releases", token="mca_wrong"), 401, "invalid_api_key")


def test_scopes(api: Api) -> None:
    reader = api.ok("POST", "/api/v1/api-keys", 201, json={"name": "ci", "scopes": ["read"]})
    assert api.call("GET", "/api/v1/devices", token=reader["key"]).status_code == 200
    assert_error(api.call("POST", "/api/v1/boards", token=reader["key"], json={"name": "x"}), 403,
                 "insufficient_scope")
    api.ok("DELETE", f"/api/v1/api-keys/{reader['id']}")
    assert_error(api.call("GET", "/api/v1/devices", token=reader["key"]), 401)


def test_device_token_is_not_an_admin_key(api: Api, fleet: dict[str, Any]) -> None:
    assert_error(api.call("GET", "/api/v1/devices", token=fleet["tokens"]["SN1"]), 401)


# --- releases and trust -------------------------------------------------------------------------

def test_upload_rejections(tmp_path: Path, signing_key: PrivateKey, other_key: PrivateKey,
                           image: Callable[..., bytes]) -> None:
    with make_api(tmp_path, max_upload_bytes=64 * 1024) as api:
        api.trust(signing_key)
        good = image("1.0.0")
        cases = [
            (b"not an image at all", 422, "not_an_image"),
            (good[:-10], 422, "not_an_image"),
            (good[:700] + bytes([good[700] ^ 0xFF]) + good[701:], 422, "tampered"),
            (image("1.0.0", key=None), 422, "unsigned"),
            (image("1.0.0", key=other_key), 422, "untrusted_key"),
            (image("1.0.0", board="nrf52840dk"), 422, "wrong_board"),
            (good + bytes(64 * 1024), 413, "upload_too_large"),
        ]
        for data, status, code in cases:
            response = api.call("POST", "/api/v1/releases", params={"board": BOARD}, content=data)
            assert_error(response, status, code)
        assert api.ok("GET", "/api/v1/releases") == []
        assert list((api.data_dir / "blobs").glob("??/*")) == []        # nothing stored for a refusal
        api.upload(good)
        again = image("1.0.0+9")       # same version: the build number does not make it another one
        assert_error(api.call("POST", "/api/v1/releases", params={"board": BOARD}, content=again), 409,
                     "duplicate_version")


def test_upload_stores_once_by_sha256(api: Api, signing_key: PrivateKey, image: Callable[..., bytes]) -> None:
    api.trust(signing_key)
    data = image("1.0.0")
    first = api.upload(data, board="boardA")
    second = api.upload(data, board="boardB")
    assert first["sha256"] == second["sha256"]
    assert len(list((api.data_dir / "blobs").glob("??/*"))) == 1
    got = api.call("GET", f"/api/v1/releases/{first['id']}/image")
    assert got.content == data


def test_per_board_trust(api: Api, signing_key: PrivateKey, other_key: PrivateKey,
                         image: Callable[..., bytes]) -> None:
    api.ok("POST", "/api/v1/boards", 201, json={"name": "boardA"})
    api.trust(other_key, board="boardA")
    assert_error(api.call("POST", "/api/v1/releases", params={"board": "boardB"},
                          content=image("1.0.0", key=other_key)), 422, "unsigned")
    assert api.upload(image("1.0.0", key=other_key), board="boardA")["signed"]
    assert_error(api.call("POST", "/api/v1/trust/keys", json={"pem": "-----BEGIN nonsense"}), 422,
                 "invalid_key")
    assert_error(api.call("POST", "/api/v1/trust/keys", json={"pem": other_key.public().pem().decode(),
                                                              "board": "boardA"}), 409, "key_exists")
    assert_error(api.call("POST", "/api/v1/trust/keys", json={"pem": signing_key.public().pem().decode(),
                                                              "board": "nope"}), 404, "unknown_board")


def test_unsigned_server(tmp_path: Path, image: Callable[..., bytes]) -> None:
    with make_api(tmp_path, require_signatures=False) as api:
        release = api.upload(image("1.0.0", key=None), product="widget")
        assert (release["signed"], release["product"]) == (False, "widget")
        assert release["file_name"] == "widget_f407_v1.0.0.bin"


# --- bad input everywhere -------------------------------------------------------------------------

def test_malformed_and_invalid_json(api: Api) -> None:
    response = api.call("POST", "/api/v1/devices", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_json")
    body = assert_error(api.call("POST", "/api/v1/devices", json={"serial": "x"}), 422, "invalid_request")
    assert any(p["loc"][-1] == "board" for p in body["detail"])
    assert_error(api.call("POST", "/api/v1/rollouts", json={"release_id": 10**30}), 422, "invalid_request")


def test_unknown_things(api: Api, fleet: dict[str, Any]) -> None:
    assert_error(api.call("GET", "/api/v1/devices/NOPE"), 404, "unknown_device")
    assert_error(api.call("GET", "/api/v1/releases/999"), 404, "unknown_release")
    assert_error(api.call("GET", "/api/v1/rollouts/999"), 404, "unknown_rollout")
    assert_error(api.call("POST", "/api/v1/rollouts", json={"release_id": 999}), 404, "unknown_release")
    assert_error(api.call("POST", "/api/v1/devices", json={"serial": "X1", "board": "nope"}), 404,
                 "unknown_board")
    assert_error(api.call("GET", "/no/such/path"), 404, "not_found")
    assert_error(api.call("DELETE", "/api/v1/releases"), 405)


def test_bad_names(api: Api, fleet: dict[str, Any]) -> None:
    assert_error(api.call("POST", "/api/v1/devices", json={"serial": "../../etc", "board": BOARD}), 400,
                 "invalid_serial")
    assert_error(api.call("POST", "/api/v1/devices", json={"serial": "SN1", "board": BOARD}), 409,
                 "device_exists")
    assert_error(api.call("POST", "/api/v1/devices", json={"serial": "SN9", "board": BOARD, "tags": ["a b"]}),
                 400, "invalid_tag")
    assert_error(api.call("POST", "/api/v1/devices",
                          json={"serial": "SN9", "board": BOARD, "version": "1.x"}),
                 400, "invalid_version")
    assert_error(api.call("POST", "/api/v1/releases", params={"board": BOARD, "file_name": "../x.bin"},
                          content=b"x"), 400, "invalid_file_name")


def test_rate_limit(tmp_path: Path) -> None:
    with make_api(tmp_path, rate_limit=0.01, rate_burst=3) as api:     # one token per 100 s
        statuses = [api.call("GET", "/api/v1/boards").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        response = api.call("GET", "/api/v1/boards")
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
        assert api.client.get("/healthz").status_code == 200       # never limited
        assert "mcuota_rate_limited_requests_total 3.0" in api.client.get("/metrics").text


# --- the device API --------------------------------------------------------------------------------

def test_device_auth_errors(api: Api, fleet: dict[str, Any]) -> None:
    body = {"serial": "SN1", "board": BOARD, "version": "1.0.0"}
    assert_error(api.client.post("/api/v1/device/checkin", json=body), 401, "missing_token")
    assert_error(api.call("POST", "/api/v1/device/checkin", token="mcd_forged", json=body), 401,
                 "invalid_token")
    assert_error(api.call("POST", "/api/v1/device/checkin", token=fleet["tokens"]["SN2"], json=body), 403,
                 "wrong_device")
    assert_error(api.call("POST", "/api/v1/device/checkin", token=fleet["tokens"]["SN1"],
                          json={**body, "board": "other"}), 409, "board_mismatch")


def test_a_device_sees_only_its_own_artifacts(api: Api, fleet: dict[str, Any]) -> None:
    sn1, sn2 = fleet["tokens"]["SN1"], fleet["tokens"]["SN2"]
    job = api.checkin("SN1", sn1, "1.0.0")["job"]
    assert api.call("GET", job["url"], token=sn1).status_code == 200
    assert_error(api.call("GET", job["url"], token=sn2), 404, "no_such_job")
    assert_error(api.call("GET", "/seed002/SN2/" + job["file_name"], token=sn2), 404, "no_such_job")
    assert_error(api.call("GET", "/seed002/SN1/" + job["file_name"], token=sn2), 403, "wrong_device")


def test_ranges(api: Api, fleet: dict[str, Any]) -> None:
    token = fleet["tokens"]["SN1"]
    job = api.checkin("SN1", token, "1.0.0")["job"]
    size, etag = job["size"], f'"{job["sha256"]}"'
    whole = api.call("GET", job["url"], token=token)
    assert whole.headers["etag"] == etag
    assert whole.headers["accept-ranges"] == "bytes"
    assert len(whole.content) == size
    part = api.call("GET", job["url"], token=token, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    beyond = api.call("GET", job["url"], token=token, headers={"Range": f"bytes={size}-"})
    assert_error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{size}"
    stale = api.call("GET", job["url"], token=token, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert len(stale.content) == size
    fresh = api.call("GET", job["url"], token=token, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206
    assert fresh.content == whole.content[:10]
    head = api.call("HEAD", job["url"], token=token)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(size)
    assert head.content == b""
    assert api.call("GET", job["url"], token=token, headers={"If-None-Match": etag}).status_code == 304


def test_reports_are_idempotent_and_never_regress(api: Api, fleet: dict[str, Any]) -> None:
    token = fleet["tokens"]["SN1"]
    rid = api.checkin("SN1", token, "1.0.0")["job"]["release_id"]
    assert api.report(rid, "downloading", token)["changed"]
    assert not api.report(rid, "downloading", token)["changed"]
    assert api.report(rid, "rebooting", token)["state"] == "rebooting"
    late = api.report(rid, "downloaded", token)
    assert (late["state"], late["changed"]) == ("rebooting", False)
    assert api.report(rid, "success", token)["state"] == "success"
    assert api.report(rid, "downloading", token)["state"] == "success"
    assert_error(api.call("POST", "/api/v1/device/reports", token=token,
                          json={"release_id": rid, "state": "failure"}), 409, "conflicting_report")
    assert api.report(rid, "reverted", token)["state"] == "reverted"        # the bootloader undid it
    assert_error(api.call("POST", "/api/v1/device/reports", token=token,
                          json={"release_id": rid, "state": "exploded"}), 422)
    assert_error(api.call("POST", "/api/v1/device/reports", token=fleet["tokens"]["SN2"],
                          json={"release_id": rid, "state": "success"}), 404, "no_such_job")
    history = api.ok("GET", "/api/v1/devices/SN1")["attempts"][0]["history"]
    assert [h["state"] for h in history] == ["offered", "downloading", "rebooting", "success", "reverted"]


def test_success_updates_the_running_version(api: Api, fleet: dict[str, Any]) -> None:
    token = fleet["tokens"]["SN1"]
    rid = api.checkin("SN1", token, "1.0.0")["job"]["release_id"]
    api.report(rid, "success", token)
    assert api.ok("GET", "/api/v1/devices/SN1")["version"] == "2.0.0"
    assert api.checkin("SN1", token, "2.0.0") == {"update": False, "job": None}


# --- version gating and downgrades -----------------------------------------------------------------

def test_never_offers_the_same_or_an_older_version(api: Api, signing_key: PrivateKey,
                                                    image: Callable[..., bytes]) -> None:
    api.trust(signing_key)
    old = api.upload(image("1.5.0"))
    api.rollout(old["id"], stages=[100])
    token = api.device("SN1", version="2.0.0")
    assert api.checkin("SN1", token, "2.0.0")["update"] is False
    assert api.checkin("SN1", token, "1.5.0")["update"] is False       # same version: nothing to do
    job = api.checkin("SN1", token, "1.4.9")["job"]
    assert job["version"] == "1.5.0"
    other = api.device("SN2", version="2.0.0")
    api.rollout(old["id"], stages=[100], allow_downgrade=True)
    assert api.checkin("SN2", other, "2.0.0")["job"]["version"] == "1.5.0"


def test_targeting_by_tags(api: Api, signing_key: PrivateKey, image: Callable[..., bytes]) -> None:
    api.trust(signing_key)
    release = api.upload(image("2.0.0"))
    api.rollout(release["id"], tags=["canary", "eu"], stages=[100])
    both = api.device("A", tags=("canary", "eu"))
    one = api.device("B", tags=("canary",))
    assert api.checkin("A", both, "1.0.0")["update"] is True
    assert api.checkin("B", one, "1.0.0")["update"] is False
    api.ok("PUT", "/api/v1/devices/B/tags", json={"tags": ["canary", "eu", "x"]})
    assert api.checkin("B", one, "1.0.0")["update"] is True


def test_pause_resume_cancel(api: Api, fleet: dict[str, Any]) -> None:
    sn1, sn2 = fleet["tokens"]["SN1"], fleet["tokens"]["SN2"]
    assert api.checkin("SN1", sn1, "1.0.0")["update"]
    assert api.ok("POST", "/api/v1/rollouts/1/pause")["state"] == "paused"
    assert api.checkin("SN2", sn2, "1.0.0")["update"] is False
    assert api.checkin("SN1", sn1, "1.0.0")["update"] is False
    assert api.ok("POST", "/api/v1/rollouts/1/resume")["state"] == "active"
    assert api.checkin("SN1", sn1, "1.0.0")["update"] is True          # the same attempt again
    status = api.ok("POST", "/api/v1/rollouts/1/cancel")
    assert status["state"] == "cancelled"
    assert status["counts"]["cancelled"] == 1
    assert api.checkin("SN2", sn2, "1.0.0")["update"] is False
    assert_error(api.call("POST", "/api/v1/rollouts/1/resume"), 409, "invalid_transition")
    actions = [e["action"] for e in api.ok("GET", "/api/v1/audit")]
    assert {"rollout.pause", "rollout.resume", "rollout.cancel", "rollout.create", "release.upload",
            "device.add", "trust.add"} <= set(actions)


def test_metrics(api: Api, fleet: dict[str, Any]) -> None:
    api.checkin("SN1", fleet["tokens"]["SN1"], "1.0.0")
    text = api.client.get("/metrics").text
    assert 'mcuota_checkins_total{protocol="device-api",result="offered"} 1.0' in text
    assert 'mcuota_fleet_objects{kind="devices"} 2.0' in text
    assert 'route="/api/v1/device/checkin"' in text


def test_a_checkin_on_the_new_version_completes_the_attempt(api: Api, fleet: dict[str, Any]) -> None:
    token = fleet["tokens"]["SN1"]
    rid = api.checkin("SN1", token, "1.0.0")["job"]["release_id"]
    api.report(rid, "rebooting", token)
    # the success report was lost, but the device checks in running the new version
    assert api.checkin("SN1", token, "2.0.0") == {"update": False, "job": None}
    attempt = api.ok("GET", "/api/v1/devices/SN1")["attempts"][0]
    assert attempt["state"] == "success"
    assert api.ok("GET", "/api/v1/rollouts/1")["succeeded"] == 1


def test_a_rotated_token_stops_working_at_once(api: Api, fleet: dict[str, Any]) -> None:
    """Even while ranges are served from the per-device cache."""
    token = fleet["tokens"]["SN1"]
    job = api.checkin("SN1", token, "1.0.0")["job"]
    for start in (0, 4096):  # warm the per-device caches the way a ranged download does
        part = api.call("GET", job["url"], token=token, headers={"Range": f"bytes={start}-{start + 4095}"})
        assert part.status_code == 206
    fresh = api.client.post("/api/v1/devices/SN1/token", headers={"Authorization": f"Bearer {api.key}"})
    assert fresh.status_code == 200, fresh.text
    stale = api.call("GET", job["url"], token=token, headers={"Range": "bytes=0-4095"})
    assert_error(stale, 401, "invalid_token")
    again = api.call("GET", job["url"], token=fresh.json()["token"], headers={"Range": "bytes=0-4095"})
    assert again.status_code == 206
