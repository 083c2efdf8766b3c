"""Helpers of the update-server tests that are not fixtures: signed sample images, the app in process
through httpx's ASGI transport, and a real server (uvicorn in a thread) on a free port."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx

from mcuota.image.keys import PrivateKey
from mcuota.image.mcuboot import build_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.server.release_check import BOARD_TLV
from mcuota.server.settings import Settings

BOARD = "f407"



def make_image(version: str, key: PrivateKey | None, *, board: str | None = None,
               release: str = "2.0.0") -> bytes:
    """A real MCUboot image of the sample application, signed with ``key`` (unsigned with None)."""
    payload = sample_path("mcuboot-f407", release, "bin").read_bytes()
    custom = [(BOARD_TLV, board.encode())] if board else []
    return build_image(payload, version=ImageVersion.parse(version), header_size=0x200, pad_header=True,
                       key=key, custom_tlvs=custom).data


# --- the app in process ----------------------------------------------------------------------------

class SyncAsgiClient:
    """httpx over the ASGI transport, driven from synchronous tests through an anyio portal."""

    def __init__(self, portal: Any, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self.client.request, method, url, **kwargs)
        response: httpx.Response = self.portal.call(call)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@contextmanager
def asgi_client(app: Any) -> Iterator[SyncAsgiClient]:
    """The app with its lifespan entered (start-up and shutdown run as under uvicorn)."""
    with anyio.from_thread.start_blocking_portal() as portal:
        lifespan = app.router.lifespan_context(app)
        portal.call(lifespan.__aenter__)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        try:
            yield SyncAsgiClient(portal, client)
        finally:
            portal.call(client.aclose)
            portal.call(lifespan.__aexit__, None, None, None)


# --- a real server ---------------------------------------------------------------------------------

@dataclass
class LiveServer:
    url: str
    data_dir: Path
    admin_key: str
    settings: Settings
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client sending ``token`` (default: the admin key) as its bearer credential."""
        made = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token or self.admin_key}"},
                            timeout=30)
        self.clients.append(made)
        return made


def start_server(settings: Settings) -> tuple[Any, threading.Thread, str]:
    """uvicorn serving ``create_app(settings)`` in a thread on a free port; returns (server, thread, url)."""
    import uvicorn

    from mcuota.server.app import create_app
    from mcuota.server.serve import bind

    app = create_app(settings)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
                            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    scheme = "https" if settings.tls_cert else "http"
    return server, thread, f"{scheme}://127.0.0.1:{port}"


class Ops:
    """The operator's and devices' calls, over a live server (one admin client, a client per token)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.admin = server.client()
        self._devices: dict[str, httpx.Client] = {}

    def ok(self, method: str, path: str, status: int = 200, *, token: str | None = None,
           **kwargs: Any) -> Any:
        client = self.admin if token is None else self.as_device(token)
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def as_device(self, token: str) -> httpx.Client:
        if token not in self._devices:
            self._devices[token] = self.server.client(token)
        return self._devices[token]

    def trust(self, key: PrivateKey) -> Any:
        return self.ok("POST", "/api/v1/trust/keys", 201, json={"pem": key.public().pem().decode()})

    def upload(self, data: bytes, board: str = BOARD) -> Any:
        return self.ok("POST", "/api/v1/releases", 201, params={"board": board}, content=data)

    def device(self, serial: str, version: str = "1.0.0", tags: tuple[str, ...] = ()) -> str:
        created = self.ok("POST", "/api/v1/devices", 201,
                          json={"serial": serial, "board": BOARD, "version": version, "tags": list(tags)})
        return str(created["token"])

    def rollout(self, release_id: int, **body: Any) -> Any:
        return self.ok("POST", "/api/v1/rollouts", 201, json={"release_id": release_id, **body})

    def status(self, rollout_id: int) -> Any:
        return self.ok("GET", f"/api/v1/rollouts/{rollout_id}")

    def checkin(self, serial: str, token: str, version: str = "1.0.0") -> Any:
        return self.ok("POST", "/api/v1/device/checkin", token=token,
                       json={"serial": serial, "board": BOARD, "version": version})["job"]

    def report(self, release_id: int, state: str, token: str) -> Any:
        return self.ok("POST", "/api/v1/device/reports", token=token,
                       json={"release_id": release_id, "state": state})

    def download(self, url: str, token: str, step: int = 4096) -> bytes:
        """The artifact by Range GETs of ``step`` bytes, checking every Content-Range."""
        client = self.as_device(token)
        data = b""
        total = None
        while total is None or len(data) < total:
            end = len(data) + step - 1
            response = client.get(url, headers={"Range": f"bytes={len(data)}-{end}"})
            assert response.status_code == 206, response.text
            unit, _, spec = response.headers["content-range"].partition(" ")
            span, _, size = spec.partition("/")
            assert unit == "bytes"
            assert span == f"{len(data)}-{len(data) + len(response.content) - 1}"
            total = int(size)
            data += response.content
        return data
