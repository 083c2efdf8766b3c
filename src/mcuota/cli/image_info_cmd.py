"""``mcuota image info``: what is this file? Detects the format and prints its fields."""

from __future__ import annotations

import argparse
from typing import Any

from mcuota.cli.common import add_command, print_json


def register(sub: Any) -> None:
    parser = add_command(
        sub, "info", "detect an image's format and show its fields",
        "mcuota image info --json app-signed.bin",
        description="Detect the format of IMAGE (MCUboot, stm32-header, interrupt, Gizwits sidecar, DFU, "
                    "DfuSe, ELF, Intel HEX, SREC or raw) and show its header, TLVs and checks.")
    parser.add_argument("image", metavar="IMAGE", help="the file to inspect")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcuota.fsutil import read_input
    from mcuota.image.inspect import inspect_image

    info = inspect_image(read_input(args.image, "image"), args.image)
    if args.json:
        print_json(info)
    else:
        _print_human(info)
    return 0


def _print_human(info: dict[str, Any], indent: str = "") -> None:
    width = max((len(k) for k in info), default=0)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_human(value, indent + "  ")
        elif isinstance(value, list):
            print(f"{indent}{key}:")
            for item in value:
                if isinstance(item, dict):
                    flat = {k: v for k, v in item.items() if not isinstance(v, list | dict)}
                    print(f"{indent}  - " + ", ".join(f"{k}={_fmt(k, v)}" for k, v in flat.items()))
                    nested = {k: v for k, v in item.items() if isinstance(v, list | dict)}
                    if nested:
                        _print_human(nested, indent + "    ")
                else:
                    print(f"{indent}  - {item}")
        else:
            print(f"{indent}{key:<{width}}  {_fmt(key, value)}")


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, int) and any(word in key for word in ("address", "addr", "sp", "handler", "entry",
                                                                "start", "end", "vid", "pid", "did", "crc",
                                                                "magic", "flags", "bcd")):
        return f"0x{value:08x}" if value > 0xFFFF else f"0x{value:04x}"
    return str(value)
