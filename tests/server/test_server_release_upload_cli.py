"""``mcuota release upload`` for a Gizwits application, against a real server: the version from
--version or from the sidecar ``mcuota image build --format gizwits`` writes, checked against the file
first; and ``rollout create --max-attempts``. Mistakes are one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from server_helpers import LiveServer

from mcuota.image.gizwits import build_gizwits_metadata, sidecar_json
from mcuota.samples import sample_path

pytest_plugins = ["server_fixtures"]


def run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mcuota")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mcuota.cli.main"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCUOTA_")}
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, check=False,
                          env={**clean, **env}, timeout=60)


def one_line(proc: subprocess.CompletedProcess[str], message: str, status: int = 2) -> None:
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0], lines[0]


def test_gizwits_upload_from_cli(live_server_factory: Callable[..., LiveServer], tmp_path: Path) -> None:
    server = live_server_factory(require_signatures=False)
    env = {"MCUOTA_URL": server.url, "MCUOTA_API_KEY": server.admin_key}
    app = tmp_path / "gokit.bin"
    app.write_bytes(sample_path("gizwits-f103", "1.1.0", "bin").read_bytes())
    sidecar = tmp_path / "gokit.bin.json"
    sidecar.write_text(sidecar_json(build_gizwits_metadata(app.read_bytes(), "01010000")))

    by_sidecar = run("release", "upload", app, "--board", "gokit", "--metadata", sidecar, "--json", env=env)
    assert by_sidecar.returncode == 0, by_sidecar.stderr
    release = json.loads(by_sidecar.stdout)
    assert (release["format"], release["version"], release["soft_ver"]) == ("gizwits", "1.1.0", "01010000")

    newer = tmp_path / "gokit-2.bin"
    newer.write_bytes(sample_path("gizwits-f103", "2.0.0", "bin").read_bytes())
    by_version = run("release", "upload", newer, "--board", "gokit", "--format", "gizwits", "--version",
                     "2.0.0", env=env)
    assert by_version.returncode == 0, by_version.stderr
    assert "gizwits" in by_version.stderr

    rollout = run("rollout", "create", "--release", by_version.stdout.strip(), "--max-attempts", "5",
                  "--json", env=env)
    assert json.loads(rollout.stdout)["max_attempts"] == 5
    bad_attempts = run("rollout", "create", "--release", "1", "--max-attempts", "11", env=env)
    assert bad_attempts.returncode == 2
    assert "between 1 and 10" in bad_attempts.stderr

    one_line(run("release", "upload", newer, "--board", "gokit", "--metadata", sidecar, env=env),
             "does not match", status=1)                          # the sidecar of another file: exit 1
    one_line(run("release", "upload", app, "--board", "gokit", "--format", "gizwits", env=env),
             "needs --version")
    one_line(run("release", "upload", app, "--board", "gokit", "--version", "3.0.0", env=env),
             "--format gizwits")
    one_line(run("release", "upload", app, "--board", "gokit", "--metadata", app, env=env),
             "gizwits sidecar")
    one_line(run("release", "upload", app, "--board", "gokit", "--format", "gizwits", "--version", "3.0.0",
                 "--metadata", sidecar, env=env), "not both")
    one_line(run("release", "upload", app, "--board", "gokit", env=env), "not_an_image")
    one_line(run("release", "upload", app, "--board", "gokit", "--metadata", sidecar, env=env),
             "duplicate_version")
    listed = json.loads(run("release", "list", "--json", env=env).stdout)
    assert [r["version"] for r in listed] == ["1.1.0", "2.0.0"]
