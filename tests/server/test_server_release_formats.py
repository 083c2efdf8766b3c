"""Releases for the seed devices: seed 001's stm32-header images (recognised by their magic, CRC
checked under either variant) and seed 000's bare Gizwits applications (labelled by the upload with
format=gizwits and a version), each refused for what its bootloader would refuse, with nothing
stored; and the MD5 that the job documents carry for every release."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import SyncAsgiClient, asgi_client

from mcuota.boot.stm32_header import version_word
from mcuota.image.gizwits import APP_SIZE
from mcuota.image.stm32_header import build_stm32_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.server.app import create_app
from mcuota.server.settings import Settings

pytest_plugins = ["server_fixtures"]
BOARD = "f103"


class Api:
    def __init__(self, client: SyncAsgiClient, key: str, data_dir: Path) -> None:
        self.client = client
        self.key = key
        self.data_dir = data_dir

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token or self.key}"},
                                   **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json()

    def upload(self, data: bytes, **params: str) -> httpx.Response:
        return self.call("POST", "/api/v1/releases", params={"board": BOARD, **params}, content=data)

    def refused(self, data: bytes, status: int, code: str, **params: str) -> str:
        """The upload is refused with ``code``, and neither a release row nor a blob is left behind."""
        response = self.upload(data, **params)
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
        assert self.ok("GET", "/api/v1/releases") == []
        assert not any(p.is_file() for p in (self.data_dir / "blobs").rglob("*"))
        return str(response.json()["detail"])


@contextmanager
def make_api(tmp_path: Path, require_signatures: bool) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", rate_limit=0, require_signatures=require_signatures)
    with asgi_client(create_app(settings)) as client:
        yield Api(client, (settings.data_dir / "admin-api-key").read_text().strip(), settings.data_dir)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(tmp_path, require_signatures=False) as made:
        yield made


@pytest.fixture
def strict_api(tmp_path: Path) -> Iterator[Api]:
    with make_api(tmp_path, require_signatures=True) as made:
        yield made


def stm32_image(release: str = "2.0.0", crc: str = "crc32") -> bytes:
    payload = sample_path("stm32-header-f103", release, "bin").read_bytes()
    return build_stm32_image(payload, version_word(ImageVersion.parse(release)), crc=crc)  # type: ignore[arg-type]


def gizwits_app(release: str = "2.0.0") -> bytes:
    return sample_path("gizwits-f103", release, "bin").read_bytes()


# --- stm32-header (seed 001) -----------------------------------------------------------------------

@pytest.mark.parametrize("crc", ["crc32", "crc32-stm32"])
def test_stm32_header_release_is_accepted_with_its_header_version(api: Api, crc: str) -> None:
    data = stm32_image("1.1.0", crc)
    release = api.upload(data).json()
    assert release["format"] == "stm32-header"
    assert release["version"] == "1.1.0"
    assert release["summary"] == f"{crc} ok"
    assert release["signed"] is False
    assert release["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert release["sha256"] == hashlib.sha256(data).hexdigest()
    assert api.ok("GET", f"/api/v1/releases/{release['id']}")["md5"] == release["md5"]


def test_stm32_header_refusals_store_nothing(api: Api) -> None:
    good = stm32_image()
    tampered = good[:-1] + bytes([good[-1] ^ 0x01])
    assert "neither crc32 nor crc32-stm32" in api.refused(tampered, 422, "tampered")
    assert "truncated payload" in api.refused(good[:-4], 422, "not_an_image")
    assert "unexpected bytes" in api.refused(good + b"\xff" * 4, 422, "not_an_image")
    zero = struct.pack("<IIII", 0xABCDEFAB, 0, 0, 0x02000000)
    assert "size 0" in api.refused(zero, 422, "not_an_image")


def test_stm32_header_is_unsigned_when_signatures_are_required(strict_api: Api) -> None:
    assert "requires signatures" in strict_api.refused(stm32_image(), 422, "unsigned")


# --- gizwits (seed 000) ----------------------------------------------------------------------------

def test_gizwits_application_is_stored_with_md5_and_soft_ver(api: Api) -> None:
    data = gizwits_app("1.1.0")
    release = api.upload(data, format="gizwits", version="1.1.0").json()
    assert (release["format"], release["version"], release["soft_ver"]) == ("gizwits", "1.1.0", "01010000")
    assert release["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert "softVer 01010000" in release["summary"]
    listed = api.ok("GET", "/api/v1/releases")
    assert [(r["format"], r["soft_ver"], r["md5"]) for r in listed] == [
        ("gizwits", "01010000", release["md5"])]
    blob = api.call("GET", f"/api/v1/releases/{release['id']}/image")
    assert blob.content == data


def test_gizwits_refusals_store_nothing(api: Api) -> None:
    app = gizwits_app()
    assert "version" in api.refused(app, 422, "version_required", format="gizwits")
    oversized = app + b"\xff" * (APP_SIZE + 1 - len(app))
    assert f"{APP_SIZE}-byte APP partition" in api.refused(oversized, 422, "too_large", format="gizwits",
                                                          version="2.0.0")
    exactly = api.upload(app + b"\xff" * (APP_SIZE - len(app)), format="gizwits", version="9.9.9")
    assert (exactly.status_code, exactly.json()["size"]) == (201, APP_SIZE)     # 26 KB still fits


def test_gizwits_refuses_what_is_not_a_cortex_m_application(api: Api) -> None:
    app = gizwits_app()
    bad_stack = struct.pack("<I", 0x1000_0000) + app[4:]
    assert "stack pointer 0x10000000" in api.refused(bad_stack, 422, "not_an_image", format="gizwits",
                                                     version="2.0.0")
    even_reset = app[:4] + struct.pack("<I", 0x0800_3044) + app[8:]
    assert "reset vector 0x08003044" in api.refused(even_reset, 422, "not_an_image", format="gizwits",
                                                    version="2.0.0")
    outside = app[:4] + struct.pack("<I", 0x0810_0001) + app[8:]
    api.refused(outside, 422, "not_an_image", format="gizwits", version="2.0.0")
    api.refused(b"\x00\x50\x00\x20", 422, "not_an_image", format="gizwits", version="2.0.0")
    api.refused(b"PK\x03\x04 not firmware at all", 422, "not_an_image", format="gizwits", version="2.0.0")


def test_gizwits_bad_versions_and_unlabelled_raw_binaries(api: Api) -> None:
    app = gizwits_app()
    api.refused(app, 400, "invalid_version", format="gizwits", version="banana")
    assert "softVer" in api.refused(app, 400, "invalid_version", format="gizwits", version="100.0.0")
    assert "build number" in api.refused(app, 400, "invalid_version", format="gizwits", version="2.0.0+7")
    api.refused(app, 400, "invalid_version", version="2.0.0")          # a version only goes with gizwits
    assert "format=gizwits" in api.refused(app, 422, "not_an_image")    # a raw .bin stays refused
    assert api.upload(app, format="intel-hex").status_code == 422        # not a format the server knows


def test_gizwits_is_unsigned_when_signatures_are_required(strict_api: Api) -> None:
    assert "requires signatures" in strict_api.refused(gizwits_app(), 422, "unsigned", format="gizwits",
                                                       version="2.0.0")


# --- what the job documents carry ------------------------------------------------------------------

def test_job_documents_carry_the_md5(api: Api) -> None:
    data = gizwits_app("2.0.0")
    release = api.upload(data, format="gizwits", version="2.0.0").json()
    api.ok("POST", "/api/v1/rollouts", 201, json={"release_id": release["id"], "stages": [100]})
    tokens = [api.ok("POST", "/api/v1/devices", 201, json={"serial": s, "board": BOARD, "version": "1.0.0"}
                     )["token"] for s in ("GIZ1", "GIZ2")]
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()

    job = api.ok("POST", "/api/v1/device/checkin", token=tokens[0],
                 json={"serial": "GIZ1", "board": BOARD, "version": "1.0.0"})["job"]
    assert (job["md5"], job["format"], job["size"]) == (md5, "gizwits", len(data))
    assert api.call("GET", job["url"], token=tokens[0]).content == data

    doc = api.ok("GET", "/seed002/GIZ2/ota_update.json", token=tokens[1])
    assert (doc["Md5"], doc["Format"], doc["Size"], doc["Version"]) == (md5, "gizwits", len(data), "2.0.0")
