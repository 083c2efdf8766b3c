"""Fleets against a real ``mcuota serve`` child process: the rehearsal's verdict comes from the devices'
emulated cores after a final power cycle, and faults are counted only when they happened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcuota.device.config import Protocol
from mcuota.sim.faults import FaultPlan
from mcuota.sim.fleet import Cohort, Fleet, FleetSpec
from mcuota.sim.server import ServerHandle, ServerProcess

MCUBOOT = Cohort("mcuboot-api", "mcuboot-swap-move-f407", Protocol.DEVICE_API, "mcuboot-f407", "f407")
GIZWITS = Cohort("gizwits-http", "gizwits-f103", Protocol.SEED002_HTTP, "gizwits-f103", "gokit")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with ServerProcess(tmp_path / "server", mqtt=False) as handle:
        yield handle


def test_power_cuts_and_network_faults_are_survived(server: ServerHandle) -> None:
    plan = FaultPlan.parse("power-download=0.5,power-install=0.5,torn=0.5,drop=0.05,corrupt=0.05,"
                           "truncate=0.05")
    spec = FleetSpec(devices=12, cohorts=(MCUBOOT, GIZWITS), faults=plan, seed=3, stages=(50, 100),
                     deadline_s=60, poll_s=0.3)
    report = Fleet(spec, server).run_prepared()
    assert report.bricked == 0
    assert report.converged == 12, report.to_json()
    assert report.running_versions == {"2.0.0": 12}
    cuts = report.faults_injected.get("power-download", 0) + report.faults_injected.get("power-install", 0)
    assert cuts > 0
    assert sum(n for k, n in report.faults_injected.items() if k.startswith("net-")) > 0
    assert report.bytes_over_air >= report.bytes_resent > 0
    assert report.ok


def test_an_image_that_crashes_is_reverted_not_bricked_and_the_run_says_so(server: ServerHandle) -> None:
    spec = FleetSpec(devices=6, cohorts=(MCUBOOT,), faults=FaultPlan.parse("crash=1"), seed=1,
                     stages=(100,), deadline_s=60, poll_s=0.3)
    report = Fleet(spec, server).run_prepared()
    assert report.reverted == 6
    assert report.bricked == 0
    assert report.running_versions == {"1.0.0": 6}
    assert report.faults_injected.get("crash") == 6
    assert not report.ok
    rollout = report.rollouts[0]
    assert rollout["counts"]["reverted"] >= 1     # the devices told the server what happened


def test_sim_fleet_command_writes_the_report_and_fails_when_devices_do_not_converge(mcuota, tmp_path):
    out = tmp_path / "fleet.json"
    proc = mcuota("sim", "fleet", "--embedded", "--devices", "4", "--layout", "mcuboot-swap-move-f407",
                  "--faults", "crash=1", "--stages", "100", "--deadline", "60", "--json", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["reverted"] == 4
    assert report["bricked"] == 0
    assert report["ok"] is False
    bad = mcuota("sim", "fleet", "--embedded", "--faults", "power-download=2")
    assert bad.returncode == 2
    assert "power-download" in bad.stderr
    assert "Traceback" not in bad.stderr
