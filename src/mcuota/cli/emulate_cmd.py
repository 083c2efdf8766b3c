"""``mcuota emulate``: boot a firmware file on an emulated Cortex-M and show what it prints.

The quickest answer to "does this build actually start?" without a board: the firmware's console
output goes to stdout untouched (so it can be piped or diffed), a one-line verdict goes to stderr,
and the exit code says whether the core faulted (1) or ran (0), like every mcuota check.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcuota.cli.common import add_command, int_arg, print_json

_CPUS = ("cortex-m3", "cortex-m4")
# mcuota.emu.parts.PARTS, spelled out so that building the parser imports nothing (a test keeps them equal).
PART_NAMES = ("stm32f103xb", "stm32f407xg", "stm32f429xi", "nrf52840", "psoc6")
#: Without --input, stop once the firmware has printed something and then stayed quiet this long.
_IDLE_AFTER = 50_000


def register(sub: Any) -> None:
    parser = add_command(
        sub, "emulate", "boot firmware on an emulated Cortex-M and print its UART output",
        "mcuota emulate sample-app-2.0.0.bin --load-address 0x08020200 --input 'version'",
        description=(
            "Boot firmware on an emulated Cortex-M3/M4 (SP and PC from its vector table, as after\n"
            "reset) and print what it writes to the console UART. Runs until the console goes quiet,\n"
            "the instruction budget is spent or the core faults. Exits 0 if it ran, 1 on a fault."),
    )
    parser.add_argument("firmware", metavar="FIRMWARE", help="firmware file: .bin, .hex or .elf")
    parser.add_argument("--load-address", type=int_arg, metavar="A",
                        help="address a raw .bin is placed at and boots from (required for .bin)")
    parser.add_argument("--instructions", type=int_arg, metavar="N", default=None,
                        help="instruction budget (default: 2,000,000)")
    parser.add_argument("--cpu", choices=_CPUS,
                        help="core and its part: cortex-m3 = STM32F103xB (20 KB RAM), "
                             "cortex-m4 = STM32F407xG (128 KB RAM + 64 KB CCM); default cortex-m4")
    parser.add_argument("--part", choices=PART_NAMES,
                        help="emulate this part's memory map instead of the --cpu default")
    parser.add_argument("--input", metavar="TEXT",
                        help="text typed on the console; \\r, \\n and \\xNN escapes are decoded and a "
                             "carriage return is added unless TEXT ends with one")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of the raw output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mcuota.emu.machine import DEFAULT_MAX_INSTRUCTIONS, Machine
    from mcuota.emu.parts import AddressRange, part_for_cpu, part_named
    from mcuota.emu.vectors import check_vector_table
    from mcuota.errors import UsageError
    from mcuota.fsutil import read_input
    from mcuota.image.firmware import detect_kind, parse_firmware

    budget = DEFAULT_MAX_INSTRUCTIONS if args.instructions is None else args.instructions
    if budget <= 0:
        raise UsageError("--instructions must be at least 1")
    data = read_input(args.firmware, "firmware")
    kind = detect_kind(data, args.firmware)
    if kind == "bin" and args.load_address is None:
        raise UsageError(f"{args.firmware} is a raw binary: give the address it runs from "
                         "with --load-address")
    firmware = parse_firmware(data, kind=kind, load_address=args.load_address, name=args.firmware)
    part = part_named(args.part) if args.part else part_for_cpu(args.cpu or "cortex-m4")
    if args.cpu and args.cpu != part.cpu:
        raise UsageError(f"--part {part.name} has a {part.cpu}, not a {args.cpu}")
    typed = _decode_input(args.input) if args.input is not None else b""

    # The vector table is at the image's lowest address, as the linker scripts of Cortex-M builds put it.
    check = check_vector_table(firmware.segments[0].data[:8], firmware.start, ram=part.ram,
                               slot=AddressRange(firmware.start, firmware.end - firmware.start, "image"))
    machine = Machine(part)
    for segment in firmware.segments:   # segment by segment: gaps stay erased, as after flashing
        machine.load(segment.address, segment.data)
    machine.reset(firmware.start)
    machine.send(typed)
    result = machine.run(budget, idle_after=_IDLE_AFTER)

    if args.json:
        print_json({
            "uart": result.uart,
            "version": result.version,
            "stop_reason": result.stop.value,
            "fault": result.fault,
            "detail": result.detail,
            "instructions": result.instructions,
            "pc": result.pc,
            "sp": result.sp,
            "cpu": part.cpu,
            "part": part.name,
            "load_address": firmware.start,
            "vector_problems": [issue.problem.value for issue in check.issues],
        })
    else:
        sys.stdout.write(result.uart)
        if result.uart and not result.uart.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
        for issue in check.issues:
            print(f"mcuota: warning: {issue.message}", file=sys.stderr)
        label = "fault" if result.fault else "stopped"
        print(f"mcuota: {label}: {result.summary()}", file=sys.stderr)
    return 1 if result.fault else 0


def _decode_input(text: str) -> bytes:
    """Shell-typed text → the bytes a terminal would send, ending in Enter (CR) like a user's line."""
    from mcuota.errors import UsageError

    try:
        raw = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise UsageError(f"--input {text!r}: {exc.reason}") from None
    return raw if raw.endswith((b"\r", b"\n")) else raw + b"\r"
