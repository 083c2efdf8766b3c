"""``mcuota dfu list|download|upload``: a USB DFU host, against a board on the bus or a virtual one.

``--virtual DIR`` talks to a simulated blue pill running dapboot whose flash is saved in DIR (created
by the first download), so the whole flow (suffix checks, block polling, manifestation, and which
application the bootloader then starts) can be tried without hardware. The virtual device's time is
simulated too: the command reports the bwPollTimeouts it honoured, it does not sleep them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcuota.cli.common import add_command, int_arg, print_json

if TYPE_CHECKING:
    from mcuota.transport.dfu import DfuHost, VirtualClock, VirtualDapboot

_FLASH_FILE = "internal.flash"
_DEFAULT_IDS = "1209:db42"


def register(sub: Any) -> None:
    parser = add_command(sub, "dfu", "USB DFU 1.1 / DfuSe host: list devices, download, upload",
                         "mcuota dfu download --virtual board app.dfu")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    listing = add_command(verbs, "list", "list DFU devices (USB, or the virtual one)",
                          "mcuota dfu list --virtual board")
    _common(listing)
    listing.set_defaults(handler=run_list)

    download = add_command(verbs, "download", "download a .dfu, DfuSe or raw .bin file to a device",
                           "mcuota dfu download --virtual board sample-app-2.0.0.bin")
    download.add_argument("file", metavar="FILE", help=".dfu (suffix checked), DfuSe .dfu or raw .bin")
    download.add_argument("--address", type=int_arg, metavar="A",
                          help="where a raw image goes on a DfuSe device")
    _common(download)
    download.set_defaults(handler=run_download)

    upload = add_command(verbs, "upload", "read the application back from a device",
                         "mcuota dfu upload --virtual board app-read.bin")
    upload.add_argument("output", metavar="OUT", help="file to write")
    upload.add_argument("--length", type=int_arg, metavar="N", help="bytes to read (default: all)")
    upload.add_argument("--address", type=int_arg, metavar="A", help="start address (DfuSe devices)")
    _common(upload)
    upload.set_defaults(handler=run_upload)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", metavar="VID:PID", default=None,
                        help=f"USB IDs in hex (default {_DEFAULT_IDS}, dapboot; 0483:df11 for ST DfuSe)")
    parser.add_argument("--alt", type=int, default=0, metavar="N", help="alternate setting (default 0)")
    parser.add_argument("--virtual", metavar="DIR", type=Path,
                        help="use a virtual dapboot board whose flash is kept in DIR instead of USB")
    parser.add_argument("--dfuse", action="store_true",
                        help="with --virtual: the device speaks ST DfuSe (0483:df11) instead of plain DFU")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


# -- handlers --------------------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    from mcuota.errors import UsageError

    if args.virtual is not None:
        device, _clock = _open_virtual(args, create=False)
        infos = [device.info]
    else:
        from mcuota.transport.dfu_usb import find_devices

        vid_pid = _ids(args.device) if args.device else (None, None)
        infos = [found.info for found in find_devices(*vid_pid)]
        if not infos:
            raise UsageError("no USB DFU device found (plug one in, or try --virtual DIR)")
    if args.json:
        print_json([{"vid": i.vid, "pid": i.pid, "runtime": i.runtime, "interface": i.interface,
                     "transfer_size": i.functional.transfer_size, "bcd_dfu": i.functional.bcd_dfu,
                     "alternates": list(i.alternates), "location": i.location} for i in infos])
    else:
        for info in infos:
            print(info.describe())
    return 0


def run_download(args: argparse.Namespace) -> int:
    from mcuota.fsutil import read_input

    data = read_input(args.file, "firmware")
    host, virtual = _host(args, create=True)
    report = host.download_file(data, address=args.address)
    summary: dict[str, Any] = {"bytes": report.bytes, "blocks": report.blocks,
                               "poll_wait_s": round(report.polled_s, 3), "manifested": report.manifested}
    if virtual is not None:
        summary.update(_after_download(args, *virtual))
    if args.json:
        print_json(summary)
    else:
        print(f"downloaded {report.bytes} bytes in {report.blocks} blocks; the device asked for "
              f"{report.polled_s:.3f} s of bwPollTimeout")
        if virtual is not None:
            print(summary["runs"])
    return 0 if virtual is None or summary["application"] is not None else 1


def run_upload(args: argparse.Namespace) -> int:
    from mcuota.fsutil import atomic_write

    host, virtual = _host(args, create=False)
    data = host.upload(args.length, address=args.address)
    atomic_write(args.output, data)
    if virtual is not None:
        _save_virtual(args, virtual[0])
    if args.json:
        print_json({"bytes": len(data), "output": str(args.output)})
    else:
        print(f"uploaded {len(data)} bytes to {args.output}")
    return 0


# -- devices ------------------------------------------------------------------------------------------------

def _ids(text: str) -> tuple[int, int]:
    from mcuota.errors import UsageError

    try:
        vid, pid = (int(part, 16) for part in text.split(":"))
    except ValueError:
        raise UsageError(f"--device {text!r} is not VID:PID in hex (e.g. 1209:db42)") from None
    if not (0 <= vid <= 0xFFFF and 0 <= pid <= 0xFFFF):
        raise UsageError(f"--device {text!r}: IDs are 16-bit")
    return vid, pid


def _host(args: argparse.Namespace, *, create: bool
          ) -> tuple[DfuHost, tuple[VirtualDapboot, VirtualClock] | None]:
    """A host on a device in DFU mode: a running application is detached first."""
    from mcuota.transport.dfu import DfuHost

    if args.virtual is not None:
        device, clock = _open_virtual(args, create=create)
        if device.info.runtime:
            DfuHost(device, device.info, sleep=clock.sleep).detach()
        return DfuHost(device, device.info, sleep=clock.sleep, alternate=args.alt), (device, clock)
    return _usb_host(args), None


def _usb_host(args: argparse.Namespace) -> DfuHost:
    import time

    from mcuota.errors import UsageError
    from mcuota.transport.dfu import DfuHost
    from mcuota.transport.dfu_usb import open_device

    vid, pid = _ids(args.device or _DEFAULT_IDS)
    transport, info = open_device(vid, pid, alternate=args.alt)
    if info.runtime:
        DfuHost(transport, info, sleep=time.sleep).detach()
        raise UsageError(f"device {info.ids} was running its application and has been detached: run the "
                         "command again once it re-enumerated in DFU mode")
    return DfuHost(transport, info, sleep=time.sleep, alternate=args.alt)


def _open_virtual(args: argparse.Namespace, *, create: bool) -> tuple[VirtualDapboot, VirtualClock]:
    """The virtual board in DIR, powered up: dapboot has decided between the application and DFU."""
    from mcuota.boot.board import Board
    from mcuota.boot.presets import get_layout
    from mcuota.errors import UsageError
    from mcuota.flash import load_flash
    from mcuota.transport.dfu import DAPBOOT, DAPBOOT_DFUSE, VirtualClock, VirtualDapboot

    board = Board(get_layout("dapboot-f103"))
    path = args.virtual / _FLASH_FILE
    if path.exists():
        load_flash(board.flashes["internal"], path)
    elif not create:
        raise UsageError(f"no virtual board in {args.virtual}: 'mcuota dfu download --virtual "
                         f"{args.virtual} FILE' creates one")
    elif args.virtual.exists() and not args.virtual.is_dir():
        raise UsageError(f"--virtual {args.virtual} is not a directory")
    profile = DAPBOOT_DFUSE if args.dfuse else DAPBOOT
    clock = VirtualClock()
    device = VirtualDapboot(board, clock=clock, profile=profile)
    if args.device and _ids(args.device) != (profile.vid, profile.pid):
        raise UsageError(f"no DFU device {args.device} in {args.virtual}: the virtual board is "
                         f"{profile.vid:04x}:{profile.pid:04x}")
    return device, clock


def _save_virtual(args: argparse.Namespace, device: VirtualDapboot) -> None:
    from mcuota.flash import save_flash

    args.virtual.mkdir(parents=True, exist_ok=True)
    save_flash(device.memory.flash, args.virtual / _FLASH_FILE)


def _after_download(args: argparse.Namespace, device: VirtualDapboot, clock: VirtualClock) -> dict[str, Any]:
    """Let the device finish (it resets itself after manifestation), save it, say what runs."""
    from mcuota.boot.strategy import BootAction
    from mcuota.boot.verdict import emulate
    from mcuota.transport.dfu import State

    clock.sleep(device.info.functional.detach_timeout_ms / 1000)
    device.advance()
    if device.state is State.DFU_MANIFEST_WAIT_RESET:
        device.reset()
    _save_virtual(args, device)
    result = device.boot_result
    if result.action is BootAction.JUMP and result.address is not None:
        flash, app = device.board.flash_of("app")
        run = emulate(flash.read(app.address, app.size), result.address, device.board.layout)
        if run.version is not None and not run.fault:
            return {"application": run.version, "address": result.address,
                    "runs": f"dapboot starts the application at 0x{result.address:08x}: it prints "
                            f"v{run.version}"}
        return {"application": None, "address": result.address,
                "runs": f"dapboot starts the application at 0x{result.address:08x}, which does not "
                        f"run: {run.summary}"}
    return {"application": None, "address": None,
            "runs": f"the board stays in the bootloader: {result.reason}"}

