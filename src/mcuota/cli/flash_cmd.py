"""``mcuota flash``: send a firmware image to a board's bootloader over a local link.

A link (how the bytes travel: a serial port today) and a protocol (what is said over it: YMODEM, as
ST's AN4657 IAP bootloader and lrzsz speak it) are chosen separately, so a TCP bridge or another
bootloader protocol is one more entry in ``_LINKS`` or ``_PROTOCOLS``, not a new command. The image is
sent as it is on disk: building or signing it is ``mcuota image``'s job.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcuota.cli.common import add_command, print_json

PROTOCOLS = ("ymodem",)


def register(sub: Any) -> None:
    parser = add_command(
        sub, "flash", "send a firmware image to a board's bootloader (YMODEM over a serial port)",
        "mcuota flash --port /dev/ttyUSB0 --protocol ymodem --baud 115200 app-signed.bin",
        description=(
            "Send IMAGE to a bootloader waiting on a serial port, e.g. an STM32 IAP bootloader\n"
            "(AN4657) or 'rz --ymodem'. Start the bootloader's download mode first, or within\n"
            "--start-timeout seconds. Exits 0 when the bootloader accepted the whole file, 1 when it\n"
            "refused or cancelled it (its reason is shown), 2 when the port or the image is unusable."),
    )
    parser.add_argument("image", metavar="IMAGE", help="the file to send, byte for byte")
    link = parser.add_argument_group("link").add_mutually_exclusive_group(required=True)
    link.add_argument("--port", metavar="PORT", help="serial port (/dev/ttyUSB0, /dev/ttyACM0, COM3)")
    parser.add_argument("--baud", type=int, default=115200, metavar="N", help="serial speed (default 115200)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="ymodem",
                        help="what the bootloader speaks (default ymodem)")
    parser.add_argument("--name", metavar="NAME",
                        help="file name announced to the bootloader (default: IMAGE's base name)")
    parser.add_argument("--block-size", type=int, choices=(128, 1024), default=1024,
                        help="YMODEM data block size (default 1024; 128 for receivers without 1K blocks)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds without an answer before a block is sent again (default 5)")
    parser.add_argument("--start-timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for the bootloader to ask for the file (default 60)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the outcome as a JSON object")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class _Link:
    description: str
    line: Any  # a pyserial port, or anything with read/write/timeout
    close: Callable[[], None]


def _open_serial(args: argparse.Namespace) -> _Link:
    from mcuota.transport.ymodem_serial import open_serial

    port = open_serial(args.port, args.baud)
    return _Link(f"{args.port} at {args.baud} baud", port, port.close)


_LINKS: dict[str, Callable[[argparse.Namespace], _Link]] = {"port": _open_serial}


def _send_ymodem(link: _Link, name: str, data: bytes, args: argparse.Namespace,
                 progress: Callable[[int, int | None], None]) -> dict[str, Any]:
    from mcuota.transport.ymodem_serial import send_file

    sender = send_file(link.line, name, data, timeout=args.timeout, start_timeout=args.start_timeout,
                       block_size=args.block_size, progress=progress)
    return {"retransmissions": sender.retransmissions}


_PROTOCOLS: dict[str, Callable[..., dict[str, Any]]] = {"ymodem": _send_ymodem}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from mcuota.errors import UsageError
    from mcuota.fsutil import read_input

    if args.timeout <= 0 or args.start_timeout <= 0:
        raise UsageError("--timeout and --start-timeout must be positive")
    data = read_input(args.image, "image")
    name = args.name or Path(args.image).name
    link_kind = next(kind for kind in _LINKS if getattr(args, kind, None))
    link = _LINKS[link_kind](args)
    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=console, disable=args.quiet or args.json, transient=False)
    task = bar.add_task(f"waiting for the bootloader on {link.description}", total=len(data))

    def progress(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total, description=f"{args.protocol} {name}")

    started = time.monotonic()
    try:
        with bar:
            details = _PROTOCOLS[args.protocol](link, name, data, args, progress)
    finally:
        link.close()
    seconds = time.monotonic() - started
    rate = len(data) / 1024 / seconds if seconds > 0 else 0.0
    if args.json:
        print_json({"image": args.image, "name": name, "size": len(data), "protocol": args.protocol,
                    "link": link.description, "seconds": round(seconds, 3), **details})
    else:
        print(f"sent {name} ({len(data)} bytes) over {link.description} with {args.protocol} "
              f"in {seconds:.1f} s ({rate:.1f} KB/s)")
    return 0
