"""Sign + verify of a 1 MiB image, whole process, mcuota against imgtool in the same run.

Whole-process time is what a firmware build pays on every link, so start-up (imports) counts: imgtool
spends most of its time importing click and its key modules. Prints each tool's median over N runs and
the ratio (target: mcuota <= 0.8x imgtool).

    .venv/bin/python bench/image_bench.py [--runs 15] [--size 1048576]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=1024 * 1024)
    args = parser.parse_args()
    imgtool, mcuota = str(BIN / "imgtool"), str(BIN / "mcuota")
    slot = hex(((args.size + 0x200 + 0x1000) + 0xFFFF) & ~0xFFFF)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        payload = work / "app.bin"
        payload.write_bytes(os.urandom(args.size))
        print(f"image: {args.size} bytes, slot {slot}, {args.runs} runs each, median of sign + verify")
        print(f"{'key':<12}{'imgtool s':>12}{'mcuota s':>12}{'ratio':>8}")
        for key_type in ("ed25519", "ecdsa-p256"):
            key = work / f"{key_type}.pem"
            subprocess.run([imgtool, "keygen", "-k", str(key), "-t", key_type], check=True)
            common = ["--version", "1.2.3", "--header-size", "0x200", "--slot-size", slot, "--pad-header",
                      "--align", "8"]
            samples: dict[str, list[float]] = {"imgtool": [], "mcuota": []}
            for _ in range(args.runs):
                for tool, exe in (("imgtool", imgtool), ("mcuota", mcuota)):
                    out = work / f"signed-{tool}.bin"
                    files = [str(payload), str(out)]
                    sign = ([exe, "sign", "-k", str(key), *common, *files] if tool == "imgtool"
                            else [exe, "image", "sign", "--key", str(key), *common, *files])
                    verify = ([exe, "verify", "-k", str(key), str(out)] if tool == "imgtool"
                              else [exe, "image", "verify", "--key", str(key), str(out)])
                    samples[tool].append(timed(sign) + timed(verify))
            ref, ours = statistics.median(samples["imgtool"]), statistics.median(samples["mcuota"])
            print(f"{key_type:<12}{ref:>12.3f}{ours:>12.3f}{ours / ref:>8.2f}")


if __name__ == "__main__":
    main()
