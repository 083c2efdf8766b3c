"""The README's first command runs ``mcuota demo``: it must succeed and report what it proved."""

from __future__ import annotations

import json


def test_demo_round_trip_reports_a_verified_image_running_2_0_0(mcuota, tmp_path):
    report_file = tmp_path / "report.json"
    proc = mcuota("demo", "--json", report_file)
    assert proc.returncode == 0, proc.stderr
    assert "not built yet" in proc.stdout  # it says what it does instead of the fleet demo
    report = json.loads(report_file.read_text())
    assert report["verified"] is True
    assert report["format"] == "mcuboot"
    assert report["running_version"] == "2.0.0"


def test_image_info_detects_the_signed_image(mcuota, tmp_path):
    proc = mcuota("demo", "--keep", tmp_path)
    assert proc.returncode == 0, proc.stderr
    signed = tmp_path / "sample-app-2.0.0-signed.bin"
    info = json.loads(mcuota("image", "info", "--json", signed, check=True).stdout)
    assert info["format"] == "mcuboot"
    assert info["version"] == "2.0.0"
    human = mcuota("image", "info", signed, check=True).stdout
    assert "mcuboot" in human


def test_image_info_on_a_missing_file_is_one_line_exit_2(mcuota, tmp_path):
    proc = mcuota("image", "info", tmp_path / "nope.bin")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "does not exist" in proc.stderr
