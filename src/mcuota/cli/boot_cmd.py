"""``mcuota boot layouts | sweep``: the bootloader layouts mcuota models, and the power-cut sweep that
proves an update on one of them never bricks the device.

``sweep`` is meant to run before shipping: give it the release in the field and the one to ship, and
it cuts power at every flash operation of the update (``--torn``: also half-way through each), boots
the board to completion each time and says what it ends up running. It exits 1 if any point ends
bricked, running a wrong image or otherwise breaks the promise (old firmware after the commit point),
so it can gate a release pipeline.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mcuota.cli.common import add_command, print_json
from mcuota.cli.keys_cmd import add_password_options, read_password

if TYPE_CHECKING:
    from mcuota.boot.layout import Layout
    from mcuota.boot.sweep import SweepReport
    from mcuota.image.keys import PrivateKey

_SHOWN_FAILURES = 10


def register(sub: Any) -> None:
    parser = sub.add_parser("boot", help="bootloader layouts and power-cut sweeps of an update",
                            description="Bootloader layouts and power-cut sweeps of an update.")
    verbs = parser.add_subparsers(dest="boot_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    layouts = add_command(
        verbs, "layouts", "list the flash layout presets: devices, partitions and bootloader strategy",
        "mcuota boot layouts --json",
        description="List the flash layout presets mcuota models (the seed systems' maps and the MCUboot "
                    "layouts): each one's flash devices, partitions, application address and strategy.")
    layouts.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    layouts.set_defaults(handler=run_layouts)

    sweep = add_command(
        verbs, "sweep", "cut power at every flash operation of an update and report what the board runs",
        "mcuota boot sweep --layout gizwits-f103 --from app-1.0.0.bin --to app-2.0.0.bin --torn",
        description="Install OLD on a simulated board with the layout's bootloader, count the flash "
                    "operations of a clean update to NEW, then cut the power before each of them (--torn: "
                    "also half-way through each), boot to completion and judge what runs: the new "
                    "release, the old one (allowed before the commit point, or with --revert), a wrong "
                    "image, or nothing (bricked). 'Runs' means the bootloader jumped to the application, "
                    "the bytes there are the release's, and the emulated core boots them and prints the "
                    "release's version. Exits 1 if any point bricked, ran a wrong image or broke the "
                    "commit rule, 0 otherwise.")
    sweep.add_argument("--layout", required=True, metavar="NAME", help="layout preset (mcuota boot layouts)")
    sweep.add_argument("--from", dest="old", required=True, metavar="OLD",
                       help="the release in the field: raw firmware (.bin taken at the layout's application "
                            "address, .hex, .elf) or an image already built in the layout's format")
    sweep.add_argument("--to", dest="new", required=True, metavar="NEW", help="the release to ship (as OLD)")
    sweep.add_argument("--torn", action="store_true",
                       help="also tear every operation half-way (bits partly written or erased)")
    sweep.add_argument("--revert", action="store_true",
                       help="the new release never confirms itself: it must be rolled back (strategies that "
                            "can revert only)")
    sweep.add_argument("--key", metavar="K",
                       help="signing key for layouts with signed images (default: a throw-away ed25519 key)")
    add_password_options(sweep, "of an encrypted --key")
    sweep.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seed of the torn states and of the sampled recovery faults (default 0)")
    sweep.add_argument("--jobs", type=int, metavar="N",
                       help="processes sharing the points (default: 2 for large sweeps, else 1)")
    sweep.add_argument("--json", action="store_true", help="print the report as a JSON object")
    sweep.set_defaults(handler=run_sweep)


# -- layouts ----------------------------------------------------------------------------------------------
def layout_dict(layout: Layout) -> dict[str, Any]:
    devices = []
    for device in layout.devices:
        part = device.flash_part()
        devices.append({"name": device.name, "part": device.part, "changes": dict(device.changes),
                        "geometry": part.geometry.describe(), "size": part.size,
                        "write_unit": part.write_unit, "erased": part.erased})
    return {
        "name": layout.name, "description": layout.description, "strategy": layout.strategy,
        "cpu": layout.cpu, "app_address": layout.app_address, "image_format": layout.image_format,
        "sample_target": layout.sample_target, "devices": devices,
        "partitions": [{"name": p.name, "device": p.device, "address": p.address, "size": p.size}
                       for p in layout.partitions],
        "options": dict(layout.options),
    }


def run_layouts(args: argparse.Namespace) -> int:
    from mcuota.boot.presets import get_layout, layout_names

    layouts = [get_layout(name) for name in layout_names()]
    if args.json:
        print_json([layout_dict(layout) for layout in layouts])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Bootloader layouts", show_lines=True)
    for column in ("layout", "strategy", "flash devices", "partitions", "app at"):
        table.add_column(column)
    for layout in layouts:
        devices = "\n".join(f"{d.name}: {d.part}" + (f" {dict(d.changes)}" if d.changes else "")
                            for d in layout.devices)
        partitions = "\n".join(f"{p.name} {p.device} 0x{p.address:08x} {_size(p.size)}"
                               for p in layout.partitions)
        table.add_row(layout.name, layout.strategy, devices, partitions, f"0x{layout.app_address:08x}")
    Console().print(table)
    return 0


# -- sweep ------------------------------------------------------------------------------------------------
def run_sweep(args: argparse.Namespace) -> int:
    import dataclasses

    from mcuota.boot.presets import get_layout
    from mcuota.boot.registry import strategy_for
    from mcuota.boot.sweep import prepare_release, sweep
    from mcuota.fsutil import read_input

    layout = get_layout(args.layout)
    signer = _signer(args, layout)
    if signer is not None:  # the simulated bootloader is built with the signing key's public half
        layout = dataclasses.replace(layout, options={**layout.options, "keys": (signer.public(),)})
    strategy = strategy_for(layout)
    old = prepare_release(layout, strategy, read_input(args.old, "firmware"), name=args.old, signer=signer)
    new = prepare_release(layout, strategy, read_input(args.new, "firmware"), name=args.new, signer=signer)
    report = sweep(layout, old, new, torn=args.torn, revert=args.revert, seed=args.seed, strategy=strategy,
                   workers=args.jobs)
    if args.json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    return 0 if report.ok else 1


def _signer(args: argparse.Namespace, layout: Layout) -> PrivateKey | None:
    from mcuota.errors import UsageError

    signature = layout.options.get("signature")
    if not signature:
        if args.key:
            raise UsageError(f"layout {layout.name} does not sign its images: drop --key")
        return None
    from mcuota.image.keys import KEY_TYPES, generate_private_key, load_private_key_file

    if args.key:
        return load_private_key_file(args.key, read_password(args))
    for key_type in KEY_TYPES:
        if key_type == signature:
            return generate_private_key(key_type)
    raise UsageError(f"layout {layout.name} asks for {signature} signatures, which mcuota cannot make")


def _print_report(report: SweepReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Power-cut sweep: {report.layout} ({report.strategy}), "
                        f"{report.old_version} -> {report.new_version}"
                        + (" [revert]" if report.revert else ""), show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    outcomes = report.outcomes
    commit = "-" if report.commit_op is None else f"after op {report.commit_op} ({report.commit_source})"
    rows = [
        ("flash operations (clean update)", f"{report.flash_ops:,}"),
        ("cut points", f"{report.cut_points:,}"),
        ("torn points" + (f" (seed {report.seed})" if report.torn else ""), f"{report.torn_points:,}"),
        ("recovery-fault points", f"{report.recovery_points:,}"),
        ("runs new", f"{outcomes['new']:,}"),
        ("runs old", f"{outcomes['old']:,}"),
        ("waits in a download mode", f"{outcomes['recoverable']:,}"),
        ("bricked", f"{outcomes['bricked']:,}"),
        ("wrong image", f"{outcomes['wrong']:,}"),
        ("commit point", commit),
        ("clean update ends", f"{report.clean.value}: {report.clean_reason}"),
        ("modeled install time",
         f"{report.modeled_install_s:.3f} s typ, {report.modeled_install_max_s:.3f} s max"),
        ("erases (minimum to write the image once)", f"{report.erases_total:,} ({report.minimum_erases:,})"),
        ("bytes programmed", f"{report.bytes_programmed:,}"),
        ("wall time", f"{report.wall_s:.2f} s ({report.points_per_s:,.0f} points/s, {report.workers} "
                      f"process{'es' if report.workers > 1 else ''}, {report.emulations} emulated boots)"),
    ]
    if report.refused:
        rows.append(("update refused", report.refused))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    for failure in report.failures[:_SHOWN_FAILURES]:
        console.print(f"[red]FAIL[/red] {failure.fault}: {failure.outcome.value} - {failure.reason} "
                      f"(op: {failure.operation})", highlight=False)
    if len(report.failures) > _SHOWN_FAILURES:
        console.print(f"... and {len(report.failures) - _SHOWN_FAILURES} more failures (--json lists all)")
    if report.ok:
        console.print("PASS: no power cut breaks the update", highlight=False)
    else:
        console.print(f"[red]FAIL[/red]: {len(report.failures)} of {report.points} points", highlight=False)


def _size(size: int) -> str:
    return f"{size // 1024} KB" if size % 1024 == 0 else f"{size} B"
