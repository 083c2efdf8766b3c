"""The seed-002 HTTP flow against a real server, driven by a small client written from the Infineon
OTA agent's facts alone: GET the job document, GET the File in 4096-byte Range steps (the total from
Content-Range), POST the result. The release must arrive byte-identical."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
from server_helpers import LiveServer, Ops

from mcuota.image.keys import PrivateKey

pytest_plugins = ["server_fixtures"]
STEP = 4096


def agent_update(base_url: str, serial: str, token: str, board: str, running: tuple[int, int, int], *,
                 token_in_query: bool = False, result: str = "Success"
                 ) -> tuple[dict[str, Any], bytes | None]:
    """What the agent does in job-flow mode; returns (job document, downloaded image or None)."""
    headers = {} if token_in_query else {"Authorization": f"Bearer {token}"}
    params = {"token": token} if token_in_query else {}
    with httpx.Client(headers=headers, params=params, timeout=30) as http:
        job = http.get(f"{base_url}/seed002/{serial}/ota_update.json").json()
        wanted = tuple(int(p) for p in str(job["Version"]).split("."))
        # the agent's own checks: same board, newer version (else WRONG_BOARD / INVALID_VERSION)
        if job["Message"] != "Update Available" or job["Board"] != board or wanted <= running:
            return job, None
        scheme = "https" if job["Connection"] == "HTTPS" else "http"
        url = f"{scheme}://{job['Server']}:{job['Port']}{job['File']}"
        data = bytearray()
        total: int | None = None
        while total is None or len(data) < total:
            response = http.get(url, headers={"Range": f"bytes={len(data)}-{len(data) + STEP - 1}"})
            assert response.status_code == 206, response.text
            assert len(response.content) <= STEP
            total = int(response.headers["Content-Range"].rsplit("/", 1)[1])
            data += response.content
        ack = http.post(url, json={"Message": result, "File": job["File"]})
        assert ack.status_code == 200, ack.text
        assert ack.json()["Message"] == "Result Received"
        return job, bytes(data)


def test_seed002_agent_downloads_the_release_byte_identical(live_server_factory: Callable[..., LiveServer],
                                                            signing_key: PrivateKey,
                                                            image: Callable[..., bytes]) -> None:
    server = live_server_factory()
    ops = Ops(server)
    ops.trust(signing_key)
    data = image("1.76.0")
    release = ops.upload(data)
    token = ops.device("ABC213450001", version="1.2.28")
    ops.rollout(release["id"], stages=[100])

    job, got = agent_update(server.url, "ABC213450001", token, "f407", (1, 2, 28))
    assert got == data
    assert len(data) > 2 * STEP                    # really several Range steps
    assert job["Message"] == "Update Available"
    assert {k: job[k] for k in ("SerialNumber", "Version", "Board", "Connection", "Server", "Size",
                                "Sha256", "Format")} == {
        "SerialNumber": "ABC213450001", "Version": "1.76.0", "Board": "f407", "Connection": "HTTP",
        "Server": "127.0.0.1", "Size": len(data), "Sha256": hashlib.sha256(data).hexdigest(),
        "Format": "mcuboot"}
    assert job["Port"] == server.url.rsplit(":", 1)[1]
    assert {"Manufacturer", "ManufacturerId", "Product", "File"} <= set(job)

    device = ops.ok("GET", "/api/v1/devices/ABC213450001")
    assert device["version"] == "1.76.0"
    assert [h["state"] for h in device["attempts"][0]["history"]] == ["offered", "downloading", "success"]
    again, nothing = agent_update(server.url, "ABC213450001", token, "f407", (1, 76, 0))
    assert nothing is None
    assert again["Message"] == "No Update Available"
    assert again["Version"] == "1.76.0"
    assert "File" not in again


def test_seed002_token_in_query_and_failure_result(live_server_factory: Callable[..., LiveServer],
                                                   signing_key: PrivateKey,
                                                   image: Callable[..., bytes]) -> None:
    server = live_server_factory()
    ops = Ops(server)
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    token = ops.device("SN1")
    ops.rollout(release["id"], stages=[100])
    _, got = agent_update(server.url, "SN1", token, "f407", (1, 0, 0), token_in_query=True, result="Failure")
    assert got is not None
    attempt = ops.ok("GET", "/api/v1/devices/SN1")["attempts"][0]
    assert attempt["state"] == "failure"
    assert ops.status(1)["failed"] == 1


def test_seed002_refusals(live_server_factory: Callable[..., LiveServer], signing_key: PrivateKey,
                          image: Callable[..., bytes]) -> None:
    server = live_server_factory()
    ops = Ops(server)
    ops.trust(signing_key)
    release = ops.upload(image("2.0.0"))
    sn1, sn2 = ops.device("SN1"), ops.device("SN2")
    ops.rollout(release["id"], stages=[100])
    job = ops.ok("GET", "/seed002/SN1/ota_update.json", token=sn1)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        def status(method: str, path: str, token: str | None, **kwargs: Any) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            headers.update(kwargs.pop("headers", {}))
            response = http.request(method, path, headers=headers, **kwargs)
            assert "Traceback" not in response.text
            return response.status_code, response.json().get("error", "") if response.content else ""

        assert status("GET", "/seed002/SN1/ota_update.json", None) == (401, "missing_token")
        assert status("GET", "/seed002/SN1/ota_update.json", sn2) == (403, "wrong_device")
        assert status("GET", job["File"], sn2) == (403, "wrong_device")
        assert status("GET", "/seed002/SN2/" + job["File"].rsplit("/", 1)[1], sn2) == (404, "no_such_job")
        assert status("GET", "/seed002/SN1/..%2F..%2Fetc%2Fpasswd", sn1)[0] in (400, 404)
        assert status("GET", "/seed002/SN1/a..b", sn1) == (400, "invalid_file_name")
        assert status("GET", job["File"], sn1, headers={"Range": "bytes=999999-"}) == (
            416, "range_not_satisfiable")
        assert status("POST", job["File"], sn1, content=b"{oops") == (400, "malformed_json")
        assert status("POST", job["File"], sn1, json={"Message": "Maybe"}) == (400, "invalid_result")
        # the agent matches field names case-insensitively, so the server does too
        assert status("POST", job["File"], sn1, json={"message": "Success"}) == (200, "")
