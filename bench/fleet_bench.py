"""A fleet at size: 1,000 simulated MCUboot swap-move F407 devices take the ~230 KB ``large-f407`` sample
over HTTP from ``mcuota serve`` in a staged rollout while a fifth of them suffer power cuts (during the
download and during the install) and network faults; then 10,000 devices without faults.

Printed per run: devices converged / bricked, wall time, the server's CPU seconds (all its processes),
the simulator's CPU per device, bytes over the air, and the ratio of the devices' modeled time (flash
operations plus the waits their agents asked for) to the wall time: how much faster than the hardware
the rehearsal ran. The peer is the physical limit: the same flash work at the datasheet's typical times.

Run: ``.venv/bin/python bench/fleet_bench.py [--devices 1000] [--big 10000] [--faults PLAN]``
(``--big 0`` skips the 10,000-device run). Each run has its own deadline and fails loudly past it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

from mcuota.sim.faults import FaultPlan
from mcuota.sim.fleet import LARGE_COHORTS, Fleet, FleetReport, FleetSpec
from mcuota.sim.server import ServerProcess

BENCH_FAULTS = "power-download=0.1,power-install=0.08,torn=0.5,drop=0.01,corrupt=0.005,truncate=0.01"
"""About one device in five loses power once, and about one request in forty goes wrong in transit."""


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(devices: int, plan: FaultPlan, deadline: float, workers: int, server_workers: int
            ) -> tuple[FleetReport, float, float]:
    spec = FleetSpec(devices=devices, cohorts=LARGE_COHORTS, faults=plan, seed=7, deadline_s=deadline,
                     workers=workers, stages=(1, 10, 50, 100), halt_failure_rate=0.5)
    with tempfile.TemporaryDirectory(prefix="mcuota-fleet-bench-") as work:
        server = ServerProcess(Path(work) / "server", mqtt=False, workers=server_workers)
        handle = server.start()
        try:
            fleet = Fleet(spec, handle)
            started = time.monotonic()
            fleet.prepare()
            print(f"  prepared {devices} devices in {time.monotonic() - started:.1f} s", flush=True)
            sim_cpu = own_cpu()
            server_cpu = cpu_seconds(server.process.pid) if server.process else 0.0
            report = fleet.run()
            sim_cpu = own_cpu() - sim_cpu
            server_cpu = (cpu_seconds(server.process.pid) if server.process else 0.0) - server_cpu
        finally:
            server.stop()
    return report, server_cpu, sim_cpu


def show(title: str, report: FleetReport, server_cpu: float, sim_cpu: float) -> None:
    faults = ", ".join(f"{k} {n}" for k, n in report.faults_injected.items()) or "none"
    modeled = report.modeled_device_s
    print(f"{title}: {report.devices} devices, converged {report.converged}, reverted {report.reverted}, "
          f"failed {report.failed}, bricked {report.bricked}")
    print(f"  wall {report.wall_s:.1f} s · server CPU {server_cpu:.1f} s · simulator CPU "
          f"{sim_cpu / report.devices * 1000:.1f} ms per device ({sim_cpu:.1f} s in all)")
    print(f"  bytes over the air {report.bytes_over_air:,} (re-sent {report.bytes_resent:,}) · faults: "
          f"{faults}")
    print(f"  modeled device time median {modeled['median']} s, max {modeled['max']} s; the fleet's "
          f"{report.devices} devices x median = {report.devices * modeled['median'] / report.wall_s:,.0f}x "
          f"the wall time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000, help="devices of the run with faults (0: skip)")
    parser.add_argument("--big", type=int, default=10000, help="devices of the fault-free run (0: skip)")
    parser.add_argument("--faults", default=BENCH_FAULTS)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--server-workers", type=int, default=2, help="mcuota serve --workers (default 2)")
    args = parser.parse_args()
    ok = True
    plan = FaultPlan.parse(args.faults)
    if args.devices:
        print(f"fleet bench: {args.devices} devices, large-f407 on mcuboot-swap-move-f407 over HTTP, "
              f"faults {plan}")
        report, server_cpu, sim_cpu = one_run(args.devices, plan, args.deadline, args.workers,
                                              args.server_workers)
        show("with faults", report, server_cpu, sim_cpu)
        ok &= report.ok
    if args.big:
        print(f"fleet bench: {args.big} devices, no faults")
        report, server_cpu, sim_cpu = one_run(args.big, FaultPlan(), args.deadline * 3, args.workers,
                                              args.server_workers)
        show("no faults", report, server_cpu, sim_cpu)
        ok &= report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
