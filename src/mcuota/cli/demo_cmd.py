"""``mcuota demo``: the main job, run by the README's first command.

The end-to-end fleet demo (server, broker, simulated devices, staged rollout with faults) is built on
the device and server layers. Until it lands, the demo runs a real image round trip on the shipped
sample firmware — generate a signing key, sign release 2.0.0 for an MCUboot slot, verify it, inspect
it, and boot its payload in the emulated Cortex-M core — and says so. It exits 0 only when every step
checked out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mcuota.cli.common import add_command


def register(sub: Any) -> None:
    parser = add_command(
        sub, "demo", "run the main job (today: a real image round trip on the sample firmware)",
        "mcuota demo --json report.json",
        description="Run mcuota's end-to-end demo. The fleet demo is not built yet: this runs a real image "
                    "round trip (keygen, sign, verify, info, emulated boot) on the shipped sample firmware.")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the key and images there")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcuota.emu.banner import parse_banner_version
    from mcuota.emu.machine import boot
    from mcuota.emu.parts import part_for_sample
    from mcuota.fsutil import atomic_write
    from mcuota.image.firmware import load_firmware
    from mcuota.image.inspect import inspect_image
    from mcuota.image.keys import generate_private_key
    from mcuota.image.mcuboot import build_image, verify_image
    from mcuota.image.version import ImageVersion
    from mcuota.samples import sample_path

    print("mcuota demo: the end-to-end fleet demo is not built yet; running the image round trip "
          "(keygen -> sign -> verify -> info -> emulated boot) on the sample firmware.")
    started = time.perf_counter()
    work_ctx = tempfile.TemporaryDirectory(prefix="mcuota-demo-") if args.keep is None else None
    work = Path(args.keep if work_ctx is None else work_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        key = generate_private_key("ed25519")
        atomic_write(work / "signing-key.pem", key.pem(), mode=0o600)
        print(f"  1. generated an ed25519 signing key ({work / 'signing-key.pem'})")

        firmware = load_firmware(sample_path("mcuboot-f407", "2.0.0", "elf"))
        version = ImageVersion.parse("2.0.0")
        built = build_image(firmware.contiguous(), version=version, header_size=0x200, key=key,
                            slot_size=0x20000, pad_header=True, align=8, load_address=0)
        signed = work / "sample-app-2.0.0-signed.bin"
        atomic_write(signed, built.data)
        print(f"  2. signed sample-app 2.0.0 ({len(firmware.contiguous())} bytes) -> {signed.name} "
              f"({len(built.data)} bytes)")

        result = verify_image(built.data, [key.public()])
        print(f"  3. verify: {result.status} ({result.reason})")
        info = inspect_image(built.data, signed.name)
        print(f"  4. info: format {info.get('format')}, version {info.get('version')}, "
              f"{len(info.get('tlvs', []))} TLVs")

        payload = built.data[0x200 : 0x200 + built.header.img_size]
        run_result = boot(payload, firmware.start, part=part_for_sample("mcuboot-f407"))
        running = parse_banner_version(run_result.uart)
        print(f"  5. emulated boot at 0x{firmware.start:08x}: {run_result.uart.strip().splitlines()[0]!r}, "
              f"runs {running}")
        ok = result.ok and running == str(version) and info.get("format") == "mcuboot"
        report = {"demo": "image-round-trip", "verified": result.ok, "format": info.get("format"),
                  "running_version": running, "ok": ok, "wall_s": round(time.perf_counter() - started, 3)}
        if args.json:
            atomic_write(args.json, json.dumps(report, indent=2) + "\n")
        print(f"mcuota demo: {'OK' if ok else 'FAILED'} in {report['wall_s']} s")
        return 0 if ok else 1
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
