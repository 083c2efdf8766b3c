"""``mcuota demo``: the main job, run by the README's first command.

In a temporary directory and with nothing else installed: start the update service with its embedded
defaults (SQLite, content-addressed blobs, the embedded MQTT broker) as a child process, generate a
signing key, sign the shipped sample firmware, register a mixed fleet (Gizwits F103 over seed-002 HTTP,
MCUboot swap-move F407 over mcuota's API and over seed-002 MQTT, seed-001 header-bootloader F103), run a
staged rollout from 1.0.0 to 2.0.0 with the ``demo`` fault plan (power cuts during downloads and
installs, torn flash operations, dropped, corrupted, stalled and truncated HTTP exchanges), and report
what every device's emulated core prints after a final power cycle. Exit 0 only when every device runs
2.0.0 and none is bricked.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from mcuota.cli.common import add_command


def register(sub: Any) -> None:
    parser = add_command(
        sub, "demo", "run the main job: a staged rollout with faults on a simulated mixed fleet",
        "mcuota demo --json report.json",
        description="Start an update service with embedded defaults in a temporary directory, sign the "
                    "sample firmware, register a mixed simulated fleet (Gizwits, MCUboot over HTTP and MQTT, "
                    "seed-001), roll 2.0.0 out in stages while power cuts and network faults hit the "
                    "devices, and report what every device runs. Exit 0 only when all run 2.0.0 and none "
                    "is bricked.")
    parser.add_argument("--devices", type=int, default=200, metavar="N", help="fleet size (default 200)")
    parser.add_argument("--faults", default="demo", metavar="PLAN",
                        help="fault plan (default: the demo preset; see mcuota sim fleet --help)")
    parser.add_argument("--seed", type=int, default=1, help="fault and timing seed (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the server's data there")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcuota.cli.sim_cmd import run_fleet, write_report
    from mcuota.sim.faults import FaultPlan
    from mcuota.sim.fleet import DEMO_COHORTS, FleetSpec
    from mcuota.sim.server import ServerProcess

    spec = FleetSpec(devices=args.devices, cohorts=DEMO_COHORTS, faults=FaultPlan.parse(args.faults),
                     seed=args.seed)
    print(f"mcuota demo: {spec.devices} simulated devices ({', '.join(c.name for c in spec.cohorts)}), "
          f"rollout {spec.from_version} -> {spec.to_version} in stages {list(spec.stages)} %, faults "
          f"{spec.faults}", flush=True)
    context = tempfile.TemporaryDirectory(prefix="mcuota-demo-") if args.keep is None else None
    work = Path(args.keep if context is None else context.name)
    try:
        with ServerProcess(work / "server") as handle:
            print(f"update service at {handle.url} (data in {work / 'server'}), MQTT broker at {handle.mqtt}",
                  flush=True)
            report = run_fleet(spec, handle, title="demo")
    finally:
        if context is not None:
            context.cleanup()
    write_report(report.to_json(), args.json)
    print("OK: every device runs 2.0.0, none bricked" if report.ok else
          "FAILED: not every device runs 2.0.0 (see the report)")
    return 0 if report.ok else 1
