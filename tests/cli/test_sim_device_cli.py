"""``mcuota sim device``: a device in a state directory, created, inspected, power-cycled and run against
a real update service by separate processes, as a board on a bench."""

from __future__ import annotations

import json
from pathlib import Path

from mcuota.image.keys import generate_private_key
from mcuota.samples import sample_path
from mcuota.sim.admin import AdminApi
from mcuota.sim.server import ServerProcess


def test_create_status_and_power_cycle_offline(mcuota, tmp_path: Path) -> None:
    state = tmp_path / "dev"
    firmware = sample_path("gizwits-f103", "1.0.0", "bin")
    created = mcuota("sim", "device", "create", "--state", state, "--layout", "gizwits-f103", "--firmware",
                     firmware, "--version", "1.0.0", "--serial", "GK1", check=True)
    assert "runs 1.0.0" in created.stdout
    status = json.loads(mcuota("sim", "device", "status", state, "--json", check=True).stdout)
    assert status["running_version"] == "1.0.0"
    assert status["layout"] == "gizwits-f103"
    assert "runs 1.0.0" in mcuota("sim", "device", "power-cycle", state, check=True).stdout
    again = mcuota("sim", "device", "create", "--state", state, "--layout", "gizwits-f103", "--firmware",
                   firmware, "--version", "1.0.0", "--serial", "GK1")
    assert again.returncode == 2
    assert "already holds a device" in again.stderr
    raw = mcuota("sim", "device", "create", "--state", tmp_path / "d2", "--layout", "gizwits-f103",
                 "--firmware", firmware, "--serial", "GK2")
    assert raw.returncode == 2
    assert "give --version" in raw.stderr
    nothing = mcuota("sim", "device", "status", tmp_path / "missing")
    assert nothing.returncode == 2
    assert "not a simulated device" in nothing.stderr
    assert "Traceback" not in raw.stderr + nothing.stderr


def test_run_updates_a_device_from_a_real_server(mcuota, tmp_path: Path) -> None:
    key = generate_private_key("ed25519")
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key.pem())
    state = tmp_path / "dev"
    with ServerProcess(tmp_path / "server", mqtt=False) as server:
        with AdminApi(server.url, server.api_key) as admin:
            admin.ensure_board("f407")
            admin.trust(key.public().pem().decode(), board="f407")
            mcuota("sim", "device", "create", "--state", state, "--layout", "mcuboot-swap-move-f407",
                   "--firmware", sample_path("mcuboot-f407", "1.0.0", "bin"), "--version", "1.0.0",
                   "--key", key_file, "--serial", "SN1", "--board", "f407", "--protocol", "api",
                   "--server", server.url, "--token", admin.add_device("SN1", board="f407", version="1.0.0"),
                   check=True)
            signed = tmp_path / "2.0.0.bin"
            mcuota("image", "sign", "--key", key_file, "--version", "2.0.0", "--header-size", "0x200",
                   "--pad-header", "--slot-size", "0x60000", "--align", "1",
                   sample_path("mcuboot-f407", "2.0.0", "bin"), signed, check=True)
            release = admin.upload_release(signed.read_bytes(), board="f407")
            admin.create_rollout(int(release["id"]), board="f407", stages=[100], halt_failure_rate=0.5,
                                 min_attempts=1)
        run = mcuota("sim", "device", "run", "--state", state, "--interval", "0.2", "--checks", "4",
                     "--until", "2.0.0")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "staged 2.0.0" in run.stdout
        assert "runs 2.0.0 (updated)" in run.stdout
    status = json.loads(mcuota("sim", "device", "status", state, "--json", check=True).stdout)
    assert status["running_version"] == "2.0.0"
    assert status["slots"]["primary"]["version"] == "2.0.0"
    assert status["slots"]["primary"]["trailer"]["image_ok"] == "set"     # confirmed after its self-test
    assert "trailer magic" in mcuota("sim", "device", "status", state, check=True).stdout
