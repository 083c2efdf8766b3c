"""``mcuota image convert | bin2c | dfu add/check/strip | dfuse pack/info``: moving firmware between the
containers the field's tools want. Parsing only here; the formats live in :mod:`mcuota.image`.

Every output goes through :func:`mcuota.fsutil.atomic_write` after all of it has been computed, so a
failure (bad input, bad CRC, impossible option) leaves no file behind, not even a partial one.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

from mcuota.cli.common import add_command, int_arg, print_json

if TYPE_CHECKING:
    from mcuota.image.dfu import SuffixCheck
    from mcuota.image.dfuse import DfuseFile, DfuseTarget
    from mcuota.image.firmware import Firmware


def usb_id(text: str) -> int:
    """A USB ID in hex, as lsusb and dfu-suffix show it: ``1209``, ``0x1209``; ``ffff`` means any."""
    cleaned = text.strip().lower()
    cleaned = cleaned.removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{1,4}", cleaned):
        raise argparse.ArgumentTypeError(f"invalid USB ID {text!r}: expected 1-4 hex digits (e.g. 0483)")
    return int(cleaned, 16)


def byte_arg(text: str) -> int:
    value = int_arg(text)
    if value > 0xFF:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte value (0x00-0xff)")
    return value


def register(sub: Any) -> None:
    _register_convert(sub)
    _register_bin2c(sub)
    _register_dfu(sub)
    _register_dfuse(sub)


# --- convert ---------------------------------------------------------------------------------------

def _register_convert(sub: Any) -> None:
    p = add_command(
        sub, "convert", "convert firmware between .bin, .hex, .srec (and from .elf)",
        "mcuota image convert app.hex app.bin --fill 0xff",
        description="Convert firmware between raw binary, Intel HEX and SREC; ELF can be read. The output "
                    "format follows OUT's suffix (.bin, .hex, .srec/.s19/.s28/.s37). A raw binary input "
                    "needs --load-address to place it; gaps become --fill in a binary output.")
    p.add_argument("input", metavar="IN", help="firmware: .bin, .hex, .srec or .elf")
    p.add_argument("output", metavar="OUT", help="output file; its suffix picks the format")
    p.add_argument("--load-address", type=int_arg, metavar="A",
                   help="address of a raw binary; for HEX/SREC/ELF, move the image to start here")
    p.add_argument("--fill", type=byte_arg, default=0xFF, metavar="BYTE",
                   help="value for gaps in a binary output (default 0xff, erased flash)")
    p.add_argument("--start", type=int_arg, metavar="A", help="keep only bytes at or above this address")
    p.add_argument("--end", type=int_arg, metavar="A", help="keep only bytes below this address")
    p.add_argument("--record-size", type=int_arg, default=32, metavar="N",
                   help="data bytes per HEX/SREC record (default 32)")
    p.add_argument("--srec-address-bits", type=int, choices=(16, 24, 32),
                   help="force S1/S2/S3 records (default: the narrowest that fits)")
    p.set_defaults(handler=_convert)


def _load_cropped(args: argparse.Namespace) -> Firmware:
    from mcuota.errors import UsageError
    from mcuota.image.firmware import load_firmware

    firmware = load_firmware(args.input, load_address=args.load_address)
    if args.start is not None or args.end is not None:
        firmware = firmware.crop(args.start, args.end)
        if not firmware.segments:
            raise UsageError(f"{args.input} has no data between the --start and --end addresses")
    return firmware


def _convert(args: argparse.Namespace) -> int:
    from mcuota.fsutil import atomic_write
    from mcuota.image.firmware import output_kind_for, render_firmware

    kind = output_kind_for(args.output)
    firmware = _load_cropped(args)
    data = render_firmware(firmware, kind, fill=args.fill, record_size=args.record_size,
                           srec_address_bits=args.srec_address_bits)
    atomic_write(args.output, data)
    print(f"wrote {args.output}: {kind}, {len(firmware.segments)} segment(s), "
          f"0x{firmware.start:08x}-0x{firmware.end:08x} ({firmware.data_size} data bytes)")
    return 0


# --- bin2c -----------------------------------------------------------------------------------------

def _register_bin2c(sub: Any) -> None:
    p = add_command(
        sub, "bin2c", "write firmware as a C header (a const byte array and its length)",
        "mcuota image bin2c app.bin ota_image.h --name ota_image",
        description="Write firmware as a C header with an include guard: "
                    "'static const unsigned char NAME[]' and 'static const unsigned int NAME_len'. "
                    "HEX/SREC/ELF inputs become their contiguous bytes (gaps 0xff).")
    p.add_argument("input", metavar="IN", help="firmware: .bin, .hex, .srec or .elf")
    p.add_argument("output", metavar="OUT", help="header to write, e.g. ota_image.h")
    p.add_argument("--name", help="C identifier of the array (default: from OUT's name)")
    p.add_argument("--per-line", type=int_arg, default=12, metavar="N", help="bytes per line (default 12)")
    p.set_defaults(handler=_bin2c)


def _c_identifier(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem) or "firmware"
    return f"_{name}" if name[0].isdigit() else name


def _bin2c(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcuota.errors import UsageError
    from mcuota.fsutil import atomic_write
    from mcuota.image.bin2c import to_c_array
    from mcuota.image.firmware import load_firmware

    if args.per_line < 1:
        raise UsageError("--per-line must be at least 1")
    name = args.name or _c_identifier(Path(args.output).stem)
    firmware = load_firmware(args.input)
    data = firmware.contiguous()
    guard = f"{name.upper()}_H"
    origin = "" if firmware.source_kind == "bin" else f", loads at 0x{firmware.start:08x}"
    text = (f"/* Generated by 'mcuota image bin2c' from {Path(args.input).name} "
            f"({len(data)} bytes{origin}). */\n"
            + to_c_array(data, name, per_line=args.per_line, header_guard=guard))
    atomic_write(args.output, text)
    print(f"wrote {args.output}: {name}[{len(data)}]")
    return 0


# --- dfu add / check / strip -----------------------------------------------------------------------

def _register_dfu(sub: Any) -> None:
    group = add_command(
        sub, "dfu", "add, check or strip a USB DFU 1.1 file suffix",
        "mcuota image dfu add app.bin app.dfu --vid 1209 --pid db42",
        description="The 16-byte DFU suffix tells a DFU host (dfu-util, mcuota's host) which device a file "
                    "is for and guards it with a CRC.")
    verbs = group.add_subparsers(dest="dfu_command", metavar="VERB", parser_class=type(group))
    verbs.required = True

    p = add_command(
        verbs, "add", "append a DFU suffix (IDs in hex; ffff = any device)",
        "mcuota image dfu add app.bin app.dfu --vid 1209 --pid db42 --did 0100",
        description="Append a DFU 1.1 suffix to a raw binary (HEX/SREC/ELF are converted to their bytes "
                    "first). With --dfuse, IN must be a DfuSe container without suffix; bcdDFU becomes "
                    "0x011a and the IDs default to 0483:df11.")
    p.add_argument("input", metavar="IN", help="payload: raw binary (or HEX/SREC/ELF)")
    p.add_argument("output", metavar="OUT", help="DFU file to write")
    p.add_argument("--vid", type=usb_id, help="idVendor in hex (default ffff, or 0483 with --dfuse)")
    p.add_argument("--pid", type=usb_id, help="idProduct in hex (default ffff, or df11 with --dfuse)")
    p.add_argument("--did", type=usb_id, default=0xFFFF, help="bcdDevice in hex (default ffff)")
    p.add_argument("--dfuse", action="store_true", help="IN is a DfuSe container: bcdDFU 0x011a")
    p.set_defaults(handler=_dfu_add)

    p = add_command(
        verbs, "check", "show a DFU suffix and check its CRC (exit 1 if it does not match)",
        "mcuota image dfu check app.dfu --json")
    p.add_argument("file", metavar="FILE", help="DFU file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_dfu_check)

    p = add_command(
        verbs, "strip", "remove a DFU suffix, after checking its CRC",
        "mcuota image dfu strip app.dfu app.bin")
    p.add_argument("input", metavar="IN", help="DFU file")
    p.add_argument("output", metavar="OUT", help="payload to write")
    p.add_argument("--no-verify", action="store_true", help="strip even if the CRC does not match")
    p.set_defaults(handler=_dfu_strip)


def _payload_bytes(path: str) -> tuple[bytes, str]:
    """Raw bytes of IN: a binary as is, HEX/SREC/ELF as the contiguous image they describe."""
    from mcuota.fsutil import read_input
    from mcuota.image.firmware import detect_kind, parse_firmware

    raw = read_input(path, "input")
    kind = detect_kind(raw, path) if raw else "bin"
    if kind == "bin":
        return raw, "bin"
    return parse_firmware(raw, kind=kind, name=path).contiguous(), kind


def _dfu_add(args: argparse.Namespace) -> int:
    from mcuota.errors import FormatError, UsageError
    from mcuota.fsutil import atomic_write
    from mcuota.image.dfu import BCD_DFU_1_0, BCD_DFUSE, add_dfu_suffix
    from mcuota.image.dfuse import ST_DFU_PID, ST_VID, parse_dfuse

    payload, kind = _payload_bytes(args.input)
    if not payload:
        raise UsageError(f"{args.input} is empty: nothing to download")
    if args.dfuse:
        vid = ST_VID if args.vid is None else args.vid
        pid = ST_DFU_PID if args.pid is None else args.pid
        if not payload.startswith(b"DfuSe"):
            raise UsageError(f"--dfuse needs a DfuSe container and {args.input} is not one; "
                             "make one with 'mcuota image dfuse pack'")
        data = add_dfu_suffix(payload, vid=vid, pid=pid, did=args.did, bcd_dfu=BCD_DFUSE)
        try:
            parse_dfuse(data)
        except FormatError as exc:
            raise FormatError(f"{args.input} is not a valid DfuSe container: {exc}") from None
    else:
        vid = 0xFFFF if args.vid is None else args.vid
        pid = 0xFFFF if args.pid is None else args.pid
        if payload.startswith(b"DfuSe"):
            raise UsageError(f"{args.input} is a DfuSe container: add --dfuse")
        data = add_dfu_suffix(payload, vid=vid, pid=pid, did=args.did, bcd_dfu=BCD_DFU_1_0)
    atomic_write(args.output, data)
    source = "" if kind == "bin" else f" (from {kind})"
    print(f"wrote {args.output}: {len(payload)} bytes{source} + DFU suffix for {vid:04x}:{pid:04x} "
          f"release {args.did:04x}")
    return 0


def _check_json(path: str, check: SuffixCheck) -> dict[str, Any]:
    s = check.suffix
    return {"file": path, "payload_length": check.payload_length, "vid": s.vid, "pid": s.pid, "did": s.did,
            "bcd_dfu": s.bcd_dfu, "dfuse": s.is_dfuse, "length": s.length, "crc": s.crc,
            "computed_crc": check.computed_crc, "crc_ok": check.crc_ok}


def _dfu_check(args: argparse.Namespace) -> int:
    from mcuota.errors import FormatError
    from mcuota.fsutil import read_input
    from mcuota.image.dfu import verify_dfu_suffix

    data = read_input(args.file, "DFU file")
    try:
        check = verify_dfu_suffix(data)
    except FormatError as exc:
        raise FormatError(f"{args.file}: {exc}") from None
    if args.json:
        print_json(_check_json(args.file, check))
    else:
        s = check.suffix
        kind = " (DfuSe)" if s.is_dfuse else ""
        verdict = "ok" if check.crc_ok else f"MISMATCH (computed 0x{check.computed_crc:08x})"
        print(f"{args.file}: DFU suffix, {check.payload_length}-byte payload\n"
              f"  idVendor   0x{s.vid:04x}{' (any)' if s.vid == 0xFFFF else ''}\n"
              f"  idProduct  0x{s.pid:04x}{' (any)' if s.pid == 0xFFFF else ''}\n"
              f"  bcdDevice  0x{s.did:04x}{' (any)' if s.did == 0xFFFF else ''}\n"
              f"  bcdDFU     0x{s.bcd_dfu:04x}{kind}\n"
              f"  bLength    {s.length}\n"
              f"  dwCRC      0x{s.crc:08x} {verdict}")
    if not check.crc_ok:
        print(f"mcuota: {args.file}: DFU suffix CRC does not match: the file is damaged", file=sys.stderr)
        return 1
    return 0


def _dfu_strip(args: argparse.Namespace) -> int:
    from mcuota.errors import FormatError
    from mcuota.fsutil import atomic_write, read_input
    from mcuota.image.dfu import split_dfu_file

    data = read_input(args.input, "DFU file")
    try:
        payload, suffix = split_dfu_file(data, verify_crc=not args.no_verify)
    except FormatError as exc:
        raise FormatError(f"{args.input}: {exc}") from None
    atomic_write(args.output, payload)
    print(f"wrote {args.output}: {len(payload)} bytes (suffix for {suffix.vid:04x}:{suffix.pid:04x} removed)")
    return 0


# --- dfuse pack / info -----------------------------------------------------------------------------

def _register_dfuse(sub: Any) -> None:
    group = add_command(
        sub, "dfuse", "build or inspect ST DfuSe (.dfu) files with addressed elements",
        "mcuota image dfuse pack app.dfu --element 0x08000000:app.bin --name 'Internal Flash'",
        description="ST DfuSe files carry addressed elements grouped by alternate setting, for STM32 "
                    "system bootloaders and dfu-util -s.")
    verbs = group.add_subparsers(dest="dfuse_command", metavar="VERB", parser_class=type(group))
    verbs.required = True

    p = add_command(
        verbs, "pack", "build a DfuSe file from firmware files",
        "mcuota image dfuse pack out.dfu --element 0x08000000:boot.bin --element app.hex "
        "--element 0x1fffc000@1:opt.bin --name 0='Internal Flash' --vid 0483 --pid df11",
        description="Build a DfuSe file. Each --element is [ADDR][@ALT]:FILE: a raw binary needs ADDR; a "
                    "HEX/SREC/ELF file keeps its own addresses (ADDR moves it) and each of its segments "
                    "becomes an element. Elements with the same alternate setting form one target.")
    p.add_argument("output", metavar="OUT", help="DfuSe file to write")
    p.add_argument("--element", action="append", required=True, metavar="[ADDR][@ALT]:FILE",
                   help="firmware to include (repeatable)")
    p.add_argument("--alt", type=int_arg, default=0, metavar="N",
                   help="alternate setting for elements without @ALT (default 0)")
    p.add_argument("--name", action="append", default=[], metavar="[ALT=]NAME",
                   help="target name (for --alt, or for the given alternate setting); repeatable")
    p.add_argument("--vid", type=usb_id, default=0x0483, help="idVendor in hex (default 0483)")
    p.add_argument("--pid", type=usb_id, default=0xDF11, help="idProduct in hex (default df11)")
    p.add_argument("--did", type=usb_id, default=0xFFFF, help="bcdDevice in hex (default ffff)")
    p.set_defaults(handler=_dfuse_pack)

    p = add_command(
        verbs, "info", "list a DfuSe file's targets and elements",
        "mcuota image dfuse info app.dfu --json")
    p.add_argument("file", metavar="FILE", help="DfuSe file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-verify", action="store_true", help="read the file even if its CRC does not match")
    p.set_defaults(handler=_dfuse_info)


def _parse_element_spec(spec: str, default_alt: int) -> tuple[int | None, int, str]:
    """``[ADDR][@ALT]:FILE`` → (address or None, alternate, path); a bare path is allowed too."""
    from pathlib import Path

    from mcuota.errors import UsageError

    match = re.fullmatch(r"(?P<addr>[^:@]*)(?:@(?P<alt>[^:]*))?:(?P<file>.+)", spec, re.DOTALL)
    if match is None or (not match["addr"] and match["alt"] is None) or Path(spec).exists():
        return None, default_alt, spec
    try:
        address = int_arg(match["addr"]) if match["addr"] else None
        alt = default_alt if match["alt"] is None else int_arg(match["alt"])
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--element {spec!r}: {exc}") from None
    return address, alt, match["file"]


def _dfuse_targets(args: argparse.Namespace) -> list[DfuseTarget]:
    from mcuota.errors import UsageError
    from mcuota.fsutil import read_input
    from mcuota.image.dfu import has_dfu_suffix
    from mcuota.image.dfuse import DfuseElement, DfuseTarget
    from mcuota.image.firmware import detect_kind, parse_firmware

    by_alt: dict[int, list[DfuseElement]] = {}
    for spec in args.element:
        address, alt, path = _parse_element_spec(spec, args.alt)
        raw = read_input(path, "firmware")
        if not raw:
            raise UsageError(f"{path} is empty")
        if has_dfu_suffix(raw):
            raise UsageError(f"{path} already has a DFU suffix: strip it first (mcuota image dfu strip)")
        if detect_kind(raw, path) == "bin" and address is None:
            raise UsageError(f"{path} is a raw binary: give its address as ADDR:{path}")
        firmware = parse_firmware(raw, load_address=address, name=path)
        by_alt.setdefault(alt, []).extend(DfuseElement(s.address, s.data) for s in firmware.segments)
    names: dict[int, str] = {}
    for item in args.name:
        alt_text, sep, name = item.partition("=")
        if sep and re.fullmatch(r"\s*\d+\s*", alt_text):
            names[int(alt_text)] = name
        else:
            names[args.alt] = item
    for alt in names:
        if alt not in by_alt:
            raise UsageError(f"--name given for alternate setting {alt}, which has no elements")
    return [DfuseTarget(alt, tuple(elements), names.get(alt)) for alt, elements in by_alt.items()]


def _dfuse_pack(args: argparse.Namespace) -> int:
    from mcuota.fsutil import atomic_write
    from mcuota.image.dfuse import build_dfuse

    targets = _dfuse_targets(args)
    data = build_dfuse(targets, vid=args.vid, pid=args.pid, did=args.did)
    atomic_write(args.output, data)
    elements = sum(len(t.elements) for t in targets)
    print(f"wrote {args.output}: {len(targets)} target(s), {elements} element(s), for "
          f"{args.vid:04x}:{args.pid:04x} ({len(data)} bytes)")
    return 0


def _info_json(path: str, dfuse: DfuseFile, crc_ok: bool) -> dict[str, Any]:
    import zlib

    s = dfuse.suffix
    return {
        "file": path, "vid": s.vid, "pid": s.pid, "did": s.did, "bcd_dfu": s.bcd_dfu, "crc": s.crc,
        "crc_ok": crc_ok, "image_size_includes_suffix": dfuse.image_size_with_suffix,
        "targets": [
            {"alternate": t.alternate, "name": t.name,
             "elements": [{"address": e.address, "size": len(e.data), "crc32": zlib.crc32(e.data)}
                          for e in t.elements]}
            for t in dfuse.targets],
    }


def _dfuse_info(args: argparse.Namespace) -> int:
    from mcuota.errors import FormatError
    from mcuota.fsutil import read_input
    from mcuota.image.dfu import has_dfu_suffix
    from mcuota.image.dfuse import parse_dfuse

    data = read_input(args.file, "DfuSe file")
    try:
        dfuse = parse_dfuse(data, verify_crc=not args.no_verify)
    except FormatError as exc:
        raise FormatError(f"{args.file}: {exc}") from None
    crc_ok = has_dfu_suffix(data)
    if args.json:
        print_json(_info_json(args.file, dfuse, crc_ok))
        return 0
    s = dfuse.suffix
    print(f"{args.file}: DfuSe file, {len(dfuse.targets)} target(s), for {s.vid:04x}:{s.pid:04x} release "
          f"{s.did:04x}, CRC 0x{s.crc:08x} {'ok' if crc_ok else 'MISMATCH'}")
    for index, target in enumerate(dfuse.targets):
        name = "(unnamed)" if target.name is None else repr(target.name)
        print(f"  target {index}: alternate {target.alternate}, name {name}, "
              f"{len(target.elements)} element(s)")
        for number, element in enumerate(target.elements):
            print(f"    element {number}: 0x{element.address:08x}-0x{element.end:08x} "
                  f"({len(element.data)} bytes)")
    return 0
