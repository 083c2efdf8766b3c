"""USB DFU download of the 2.0.0 sample to the virtual dapboot (host and device in one process).

The device asks for bwPollTimeouts from the modeled flash time; the host sleeps them on a virtual
clock, so the download time is their sum. The peer is the physical limit measured in the same run:
the modeled flash time (typical) of the erases and programs the download performed. Target: the
download takes at most 1.2x the flash time. Also prints the wall time the simulation itself took.
"""

from __future__ import annotations

import time

from mcuota.boot.board import Board
from mcuota.boot.presets import get_layout
from mcuota.samples import sample_path
from mcuota.transport.dfu import DAPBOOT, DAPBOOT_DFUSE, DfuHost, VirtualClock, VirtualDapboot

TARGET = 1.2
ROUNDS = 20


def one(profile_name: str) -> tuple[float, float, float, int]:
    payload = sample_path("dapboot-f103", "2.0.0", "bin").read_bytes()
    profile = DAPBOOT_DFUSE if profile_name == "dfuse" else DAPBOOT
    walls = []
    for _ in range(ROUNDS):
        board = Board(get_layout("dapboot-f103"))
        clock = VirtualClock()
        device = VirtualDapboot(board, clock=clock, profile=profile)
        host = DfuHost(device, device.info, sleep=clock.sleep)
        flash_before = board.domain.elapsed.typical
        start = time.perf_counter()
        report = host.download_file(payload, address=0x08002000 if profile.dfuse else None)
        walls.append(time.perf_counter() - start)
        flash = board.domain.elapsed.typical - flash_before
    return clock.now, flash, min(walls), report.bytes


def main() -> int:
    ok = True
    for name in ("dfu", "dfuse"):
        download, flash, wall, size = one(name)
        ratio = download / flash
        ok &= ratio <= TARGET
        print(f"{name:5} {size} bytes: download {download * 1000:.1f} ms (sum of bwPollTimeouts) vs "
              f"flash {flash * 1000:.1f} ms (modeled, typical) -> {ratio:.3f}x (target <= {TARGET}x); "
              f"simulated in {wall * 1000:.2f} ms wall ({download / wall:.0f}x real time)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
