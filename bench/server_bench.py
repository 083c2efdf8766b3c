"""Throughput of the update server (SQLite, one ``mcuota serve`` process), each figure against a peer
measured in the same run:

* device check-ins/s over a fleet of 10,000 registered devices with a rollout to all of them (every
  first check-in admits the device and writes its attempt; the second pass re-offers it), against the
  same server's ``/healthz`` (the HTTP floor: routing, middleware, no database);
* Range GETs/s of 4096-byte steps of a release, against nginx serving the same file when nginx is
  installed (else against ``/healthz`` again, and said so).

The 10,000 devices are inserted straight into the database before the server starts (registering them
one by one over HTTP would measure registration, not check-ins). Run:
``.venv/bin/python bench/server_bench.py [--devices 10000] [--clients 16]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mcuota.image.mcuboot import build_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.server import credentials
from mcuota.server.runtime import Runtime
from mcuota.server.schema import boards, devices
from mcuota.server.settings import Settings

BOARD = "f407"


def populate(data_dir: Path, count: int) -> list[tuple[str, str]]:
    """Migrate the database and insert ``count`` devices; returns their (serial, token)."""
    runtime = Runtime.open(Settings(data_dir=data_dir, require_signatures=False))
    now = time.time()
    pairs = [(f"SN{i:06d}", credentials.new_secret(credentials.DEVICE_PREFIX)) for i in range(count)]
    with runtime.db.write() as conn:
        board_id = conn.execute(boards.insert().values(name=BOARD, product_id=None, created_at=now)
                                ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(devices.insert(), [
            {"serial": s, "board_id": board_id, "product_id": None, "version": "1.0.0", "v_major": 1,
             "v_minor": 0, "v_revision": 0, "v_build": 0, "token_hash": credentials.digest(t),
             "created_at": now}
            for s, t in pairs])
    runtime.close()
    return pairs


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = Path(sys.executable).with_name("mcuota")
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen([str(exe), "serve", "--data-dir", str(data_dir), "--port", "0", "--no-mqtt",
                             "--rate-limit", "0", "--allow-unsigned"], stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in (data_dir / "serve.log").read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "ready":
                url = next(json.loads(x)["url"] for x in (data_dir / "serve.log").read_text().splitlines()
                           if x.startswith("{") and json.loads(x).get("event") == "listening")
                return proc, url
        time.sleep(0.05)
    raise SystemExit("mcuota serve did not start")


def parallel_rate(jobs: list[Callable[[httpx.Client], None]], clients: int, url: str) -> float:
    """Requests per second running ``jobs`` spread over ``clients`` threads (one connection each)."""
    chunks = [jobs[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def worker(chunk: list[Callable[[httpx.Client], None]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            barrier.wait()
            for job in chunk:
                job(client)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return len(jobs) / (time.perf_counter() - start)


def checkin_job(serial: str, token: str) -> Callable[[httpx.Client], None]:
    body = {"serial": serial, "board": BOARD, "version": "1.0.0"}
    headers = {"Authorization": f"Bearer {token}"}

    def job(client: httpx.Client) -> None:
        response = client.post("/api/v1/device/checkin", json=body, headers=headers)
        assert response.status_code == 200, response.text

    return job


def get_job(path: str, headers: dict[str, str]) -> Callable[[httpx.Client], None]:
    def job(client: httpx.Client) -> None:
        response = client.get(path, headers=headers)
        assert response.status_code in (200, 206), response.text

    return job


def nginx_peer(blob: Path, size: int, requests: int, clients: int) -> float | None:
    nginx = shutil.which("nginx")
    if nginx is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="mcuota-nginx-"))
    (root / "image.bin").write_bytes(blob.read_bytes())
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = root / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root};
  uwsgi_temp_path {root}; scgi_temp_path {root};
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        jobs = [get_job("/image.bin", {"Range": f"bytes={(i * 4096) % size}-{(i * 4096) % size + 4095}"})
                for i in range(requests)]
        return parallel_rate(jobs, clients, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def row(label: str, ours: float, peer: float, peer_name: str) -> None:
    print(f"{label:<44} {ours:>9,.0f} req/s   {peer_name:<22} {peer:>9,.0f} req/s   "
          f"ratio {peer / ours:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mcuota-bench-"))
    try:
        t0 = time.perf_counter()
        pairs = populate(data_dir, args.devices)
        print(f"inserted {len(pairs):,} devices in {time.perf_counter() - t0:.1f} s (SQLite, {data_dir})")
        proc, url = start_server(data_dir)
        try:
            key = (data_dir / "admin-api-key").read_text().strip()
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            payload = sample_path("large-f407", "2.0.0", "bin").read_bytes()
            image = build_image(payload, version=ImageVersion.parse("2.0.0"), header_size=0x200,
                                pad_header=True).data
            release = admin.post("/api/v1/releases", params={"board": BOARD}, content=image).json()
            admin.post("/api/v1/rollouts",
                       json={"release_id": release["id"], "stages": [100]}).raise_for_status()

            floor = parallel_rate([get_job("/healthz", {}) for _ in range(4000)], args.clients, url)
            first = parallel_rate([checkin_job(s, t) for s, t in pairs], args.clients, url)
            row(f"first check-ins ({len(pairs):,} devices, admit)", first, floor, "/healthz (same server)")
            again = parallel_rate([checkin_job(s, t) for s, t in pairs[:4000]], args.clients, url)
            row("repeat check-ins (re-offer the job)", again, floor, "/healthz (same server)")

            token = pairs[0][1]
            size = release["size"]
            auth = {"Authorization": f"Bearer {token}"}
            path = f"/api/v1/device/artifacts/{release['id']}"
            steps = [(i * 4096) % size for i in range(4000)]
            ranges = [get_job(path, {**auth, "Range": f"bytes={a}-{a + 4095}"}) for a in steps]
            ours = parallel_rate(ranges, args.clients, url)
            blob = data_dir / "blobs" / release["sha256"][:2] / release["sha256"]
            peer = nginx_peer(blob, size, 4000, args.clients)
            if peer is None:
                print("nginx is not installed: Range GETs are compared with /healthz instead")
                row("Range GETs of 4096 bytes (device API)", ours, floor, "/healthz (same server)")
            else:
                row("Range GETs of 4096 bytes (device API)", ours, peer, "nginx, same file")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
