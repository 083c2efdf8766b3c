"""Local transports against their peers, measured in the same run.

YMODEM: a ~230 KB image over a socat pty pair, mcuota's sender -> ``rz --ymodem`` against
``sz --ymodem`` -> ``rz --ymodem`` (lrzsz on both ends). Target: mcuota >= 0.9x sz's throughput.
Both runs include lrzsz's own fixed pauses (about a second to start and a second after EOT), so the
ratio compares whole transfers as a user sees them.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transport"))

from ymodem_pty import pty_pair, run_lrzsz

from mcuota.samples import sample_path
from mcuota.transport.ymodem_serial import open_serial, send_file

RUNS = 4


def _mcuota_to_rz(image: bytes, work: Path) -> float:
    with pty_pair() as (theirs, ours):
        line = open_serial(ours)
        try:
            started = time.perf_counter()
            rz = run_lrzsz(["rz", "--ymodem"], theirs, work)
            send_file(line, "app.bin", image)
            if rz.wait(60) != 0:
                raise SystemExit("rz failed")
            elapsed = time.perf_counter() - started
        finally:
            line.close()
    if (work / "app.bin").read_bytes() != image:
        raise SystemExit("rz received a different file")
    return elapsed


def _sz_to_rz(source: Path, work: Path) -> float | None:
    """One lrzsz-to-lrzsz transfer; None when it stalls (it sometimes does over socat: counted, shown)."""
    with pty_pair() as (a, b):
        started = time.perf_counter()
        rz = run_lrzsz(["rz", "--ymodem"], b, work)
        sz = run_lrzsz(["sz", "--ymodem", source.name], a, source.parent)
        try:
            if sz.wait(20) != 0 or rz.wait(20) != 0:
                return None
        except subprocess.TimeoutExpired:
            sz.kill()
            rz.kill()
            sz.wait()
            rz.wait()
            return None
        elapsed = time.perf_counter() - started
    if (work / source.name).read_bytes() != source.read_bytes():
        raise SystemExit("rz received a different file")
    return elapsed


def main() -> int:
    for tool in ("sz", "rz", "socat"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup.sh installs it)")
            return 2
    image_path = sample_path("large-f407", "2.0.0", "bin")
    image = image_path.read_bytes()
    kb = len(image) / 1024
    ours: list[float] = []
    peer: list[float] = []
    stalls = {"mcuota": 0, "sz": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "src" / "app.bin"
        source.parent.mkdir()
        source.write_bytes(image)
        for run in range(RUNS):
            jobs: tuple[tuple[str, list[float], Callable[[Path], float | None]], ...] = (
                ("mcuota", ours, lambda w: _mcuota_to_rz(image, w)),
                ("sz", peer, lambda w: _sz_to_rz(source, w)))
            for name, times, job in jobs:
                work = root / f"{name}-{run}"
                work.mkdir()
                elapsed = job(work)
                if elapsed is None:
                    stalls[name] += 1
                else:
                    times.append(elapsed)
    if not ours or not peer:
        print(f"no complete run to compare (stalled runs: {stalls})")
        return 1
    print(f"YMODEM {len(image)} bytes ({image_path.name}) over a socat pty pair to rz --ymodem, {RUNS} runs")
    for name, times in (("mcuota -> rz", ours), ("sz -> rz", peer)):
        best = min(times)
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"  {name:12s} {len(times)} runs, best {best:.2f} s  median {statistics.median(times):.2f} s  "
              f"{kb / best:7.1f} KB/s  (runs: {runs})")
    print(f"  stalled runs (killed after 20 s, not timed): {stalls}")
    ratio = min(peer) / min(ours)
    print(f"  throughput mcuota / sz: {ratio:.2f}x (target >= 0.9x)")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
