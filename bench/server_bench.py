"""Throughput of the update server (SQLite, ``mcuota serve`` started as a subprocess), measured with wrk
(a C load generator, so the client is not the bottleneck), each figure against a peer measured in the
same run; every figure is requests/s and the 99th-percentile latency:

* device check-ins/s over a fleet of 10,000 registered devices with a rollout to all of them (every
  first check-in admits the device and writes its attempt; the second pass re-offers it), against the
  same server's ``/healthz`` (the HTTP floor: routing, middleware, no database);
* Range GETs/s of 4096-byte steps of a release, against nginx serving the same file when nginx is
  installed (else against ``/healthz`` again, and said so).

The 10,000 devices are inserted straight into the database before the server starts (registering them
one by one over HTTP would measure registration, not check-ins). The check-ins are measured again on
PostgreSQL when one answers at ``--postgres-url`` (a scratch database is created and dropped). Needs
``wrk`` (exits saying so when absent); nginx is optional (the Range figure then has no peer, and says
so). Run: ``.venv/bin/python bench/server_bench.py [--workers 2] [--devices 10000] [--connections 16]
[--seconds 5]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import httpx

from mcuota.image.mcuboot import build_image
from mcuota.image.version import ImageVersion
from mcuota.netutil import free_port
from mcuota.samples import sample_path
from mcuota.server import credentials
from mcuota.server.runtime import Runtime
from mcuota.server.schema import boards, devices
from mcuota.server.settings import Settings

BOARD = "f407"


def populate(data_dir: Path, count: int, database_url: str | None) -> list[tuple[str, str]]:
    """Migrate the database and insert ``count`` devices; returns their (serial, token)."""
    runtime = Runtime.open(Settings(data_dir=data_dir, database_url=database_url, require_signatures=False))
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


def start_server(data_dir: Path, workers: int, database_url: str | None
                 ) -> tuple[subprocess.Popen[bytes], str]:
    """``mcuota serve`` once every worker said it is ready."""
    exe = Path(sys.executable).with_name("mcuota")
    log = (data_dir / "serve.log").open("wb")
    database = ["--database-url", database_url] if database_url else []
    workers_arg = ["--workers", str(workers)] if workers != 1 else []  # a server older than the option
    proc = subprocess.Popen([str(exe), "serve", "--data-dir", str(data_dir), "--port", "0", "--no-mqtt",
                             "--rate-limit", "0", "--allow-unsigned", *workers_arg, *database],
                            stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        lines = (data_dir / "serve.log").read_text().splitlines()
        events = [json.loads(x) for x in lines if x.startswith("{")]
        if sum(e.get("event") == "ready" for e in events) >= workers:
            return proc, next(e["url"] for e in events if e.get("event") == "listening")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("mcuota serve did not start:\n" + (data_dir / "serve.log").read_text()[-2000:])


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str | None]:
    """A scratch database on the PostgreSQL at ``admin_url`` (dropped afterwards), or None (with a
    reason) when none answers there."""
    import psycopg

    name = f"mcuota_bench_{time.monotonic_ns()}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"no PostgreSQL at {admin_url} ({str(exc).strip().splitlines()[0]}): SQLite only")
        yield None
        return
    parsed = urlsplit(admin_url)
    try:
        yield urlunsplit(("postgresql+psycopg", parsed.netloc, f"/{name}", "", ""))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


# Prints one JSON line after wrk's own summary: requests/s over the run, p99 latency, non-2xx count.
LUA_DONE = """
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format('WRKJSON {"requests": %d, "rps": %.1f, "p99_ms": %.3f, "p50_ms": %.3f, '
    .. '"non2xx": %d, "errors": %d}\\n', summary.requests, summary.requests / secs,
    latency:percentile(99) / 1000, latency:percentile(50) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def range_script(path: str, token: str | None, size: int) -> str:
    """GETs of 4096-byte steps at a random offset per request (a device resuming anywhere)."""
    auth = f'["Authorization"] = "Bearer " .. {lua_string(token)},' if token else ""
    return f"""
local steps = {max(1, size // 4096)}
math.randomseed(os.time())
request = function()
  local start = math.random(0, steps - 1) * 4096
  return wrk.format("GET", {lua_string(path)}, {{{auth}
    ["Range"] = "bytes=" .. start .. "-" .. (start + 4095)}})
end
""" + LUA_DONE


def checkin_script(pairs: list[tuple[str, str]]) -> str:
    """POST /checkin cycling through ``pairs``; each wrk thread starts at its own offset."""
    table = ",\n".join(f"{{{lua_string(s)}, {lua_string(t)}}}" for s, t in pairs)
    return f"""
local devices = {{
{table}
}}
local n = #devices
local counter = 0
i = 0  -- global: setup() gives each thread its own start
local stride = 1
setup = function(thread)
  thread:set("i", counter)
  counter = counter + 1
end
init = function(args)
  stride = tonumber(args[1]) or 1
end
request = function()
  local d = devices[(i % n) + 1]
  i = i + stride
  local body = '{{"serial": "' .. d[1] .. '", "board": "{BOARD}", "version": "1.0.0"}}'
  return wrk.format("POST", "/api/v1/device/checkin",
    {{["Authorization"] = "Bearer " .. d[2], ["Content-Type"] = "application/json"}}, body)
end
""" + LUA_DONE


def get_script(path: str) -> str:
    return f'wrk.path = {lua_string(path)}\n' + LUA_DONE


class Result(NamedTuple):
    rps: float
    p99_ms: float
    requests: int
    bad: int


def run_wrk(url: str, script: str, work: Path, *, seconds: int, connections: int, threads: int,
            args: list[str] | None = None) -> Result:
    lua = work / f"wrk-{time.monotonic_ns()}.lua"
    lua.write_text(script)
    done = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                           "--timeout", "10s", "-s", str(lua), url, *(["--", *args] if args else [])],
                          check=False, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return Result(data["rps"], data["p99_ms"], data["requests"], data["non2xx"] + data["errors"])



@contextmanager
def nginx_peer(blob: Path) -> Iterator[str | None]:
    """nginx serving ``blob`` at /image.bin on a loopback port, or None (with a reason) if absent."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        print("nginx is not installed (apt-get install nginx): the Range GETs have no nginx peer")
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="mcuota-nginx-"))
    shutil.copyfile(blob, root / "image.bin")
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; client_body_temp_path {root}; proxy_temp_path {root};
  fastcgi_temp_path {root}; uwsgi_temp_path {root}; scgi_temp_path {root};
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def row(label: str, ours: Result, peer: Result | None, peer_name: str) -> None:
    line = f"{label:<40} {ours.rps:>8,.0f} req/s p99 {ours.p99_ms:6.1f} ms"
    if ours.bad:
        line += f" ({ours.bad} failed)"
    if peer is not None:
        line += (f" | {peer_name:<18} {peer.rps:>8,.0f} req/s p99 {peer.p99_ms:6.1f} ms"
                 f" | ratio {peer.rps / ours.rps:5.1f}x")
    print(line)


def measure(data_dir: Path, args: argparse.Namespace, database_url: str | None, label: str, *,
            ranges: bool) -> None:
    runs = {"seconds": args.seconds, "connections": args.connections, "threads": args.threads}
    t0 = time.perf_counter()
    pairs = populate(data_dir, args.devices, database_url)
    print(f"{label}: inserted {len(pairs):,} devices in {time.perf_counter() - t0:.1f} s; "
          f"mcuota serve --workers {args.workers}; wrk -t{args.threads} -c{args.connections} "
          f"-d{args.seconds}s per figure")
    proc, url = start_server(data_dir, args.workers, database_url)
    try:
        key = (data_dir / "admin-api-key").read_text().strip()
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        payload = sample_path("large-f407", "2.0.0", "bin").read_bytes()
        image = build_image(payload, version=ImageVersion.parse("2.0.0"), header_size=0x200,
                            pad_header=True).data
        release = admin.post("/api/v1/releases", params={"board": BOARD}, content=image).json()
        admin.post("/api/v1/rollouts",
                   json={"release_id": release["id"], "stages": [100]}).raise_for_status()

        floor = run_wrk(url, get_script("/healthz"), data_dir, **runs)
        row("/healthz (HTTP floor, no database)", floor, None, "")
        # Pass 1 walks the fleet from the first device: every check-in until it wraps admits a device.
        first = run_wrk(url, checkin_script(pairs), data_dir, **runs, args=[str(args.threads)])
        note = "" if first.requests <= len(pairs) else f", wrapped after {len(pairs):,}"
        row(f"check-ins, first contact (admit{note})", first, floor, "/healthz")
        seen = pairs[:max(1, min(first.requests, len(pairs)))]
        again = run_wrk(url, checkin_script(seen), data_dir, **runs, args=[str(args.threads)])
        row("check-ins, repeat (re-offer the job)", again, floor, "/healthz")
        if not ranges:
            return
        path = f"/api/v1/device/artifacts/{release['id']}"
        ours = run_wrk(url, range_script(path, pairs[0][1], release["size"]), data_dir, **runs)
        blob = data_dir / "blobs" / release["sha256"][:2] / release["sha256"]
        with nginx_peer(blob) as peer_url:
            peer = None if peer_url is None else run_wrk(
                peer_url, range_script("/image.bin", None, release["size"]), data_dir, **runs)
        row("Range GETs of 4096 bytes (device API)", ours, peer, "nginx, same file")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="mcuota serve --workers (default 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run (default 5)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL to measure the check-ins on too, '' for none "
                             "(default: the local one, when it answers)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("server_bench needs wrk (apt-get install wrk); nothing measured")
    with tempfile.TemporaryDirectory(prefix="mcuota-bench-") as tmp:
        measure(Path(tmp) / "sqlite", args, None, "SQLite", ranges=True)
    if not args.postgres_url:
        return
    with postgres_database(args.postgres_url) as url, \
            tempfile.TemporaryDirectory(prefix="mcuota-bench-") as tmp:
        if url is not None:
            measure(Path(tmp) / "pg", args, url, "PostgreSQL", ranges=False)


if __name__ == "__main__":
    main()
