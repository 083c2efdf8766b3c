"""The README's first command runs ``mcuota demo``: it must succeed and report what it proved."""

from __future__ import annotations

import json


def test_demo_rolls_a_mixed_fleet_to_2_0_0_with_faults(mcuota, tmp_path):
    """The main job, small: every cohort (Gizwits over HTTP, MCUboot over the API and MQTT, seed-001)
    and faults that hit both the power and the network; the full 200-device run is the README's."""
    report_file = tmp_path / "report.json"
    proc = mcuota("demo", "--devices", "16", "--faults", "demo,power-download=0.3,power-install=0.3,drop=0.1",
                  "--json", report_file, "--keep", tmp_path / "work")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_file.read_text())
    for field in ("devices", "converged", "reverted", "failed", "bricked", "running_versions",
                  "faults_injected", "bytes_over_air", "wall_s"):
        assert field in report
    assert report["devices"] == 16
    assert report["converged"] == 16
    assert report["bricked"] == 0
    assert report["running_versions"] == {"2.0.0": 16}
    assert set(report["cohorts"]) == {"gizwits-http", "mcuboot-api", "mcuboot-mqtt", "seed001-api"}
    assert sum(report["faults_injected"].values()) > 0
    assert report["bytes_over_air"] >= 16 * 11_000
    assert all(r["state"] == "completed" for r in report["rollouts"])
    assert "OK: every device runs 2.0.0" in proc.stdout
    # the server's data stayed where --keep put it
    assert (tmp_path / "work" / "server" / "admin-api-key").is_file()


def test_image_info_on_a_missing_file_is_one_line_exit_2(mcuota, tmp_path):
    proc = mcuota("image", "info", tmp_path / "nope.bin")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "does not exist" in proc.stderr
