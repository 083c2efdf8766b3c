"""``mcuota image sign | verify``: MCUboot images from the command line, as a drop-in for ``imgtool``.

Long options (and their short forms) are named as imgtool 2.5 names them, so a build script switches
tools by changing the program name. The format lives in :mod:`mcuota.image.mcuboot`; this module only
parses arguments, reads and writes files, and prints.

Signing runs in every firmware build, so start-up matters: nothing heavier than argparse is imported
until a handler runs; the file handling lives in :mod:`mcuota.image.mcuboot.files`.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from mcuota.cli.common import add_command, int_arg, print_json
from mcuota.cli.keys_cmd import add_password_options, read_password

if TYPE_CHECKING:
    from mcuota.image.mcuboot import Dependency

_DEPENDENCY = re.compile(r"\(\s*(\d+)\s*,\s*([^()\s,]+)\s*\)")


def security_counter_arg(text: str) -> int | str:
    """imgtool's ``--security-counter``: a number, or ``auto`` (derived from the version)."""
    if text.strip().lower() == "auto":
        return "auto"
    value = int_arg(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text!r} does not fit 32 bits")
    return value


def erased_val_arg(text: str) -> int:
    value = int_arg(text)
    if value not in (0x00, 0xFF):
        raise argparse.ArgumentTypeError(f"{text!r}: erased flash reads 0 or 0xff")
    return value


def custom_tlv_value(text: str) -> bytes:
    """imgtool's convention: ``0x…`` is hex bytes, anything else is UTF-8 text."""
    if text.startswith("0x"):
        digits = text[2:]
        if len(digits) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", digits):
            raise argparse.ArgumentTypeError(f"custom TLV value {text!r} is not an even number of hex digits")
        return bytes.fromhex(digits)
    return text.encode()


def register(sub: Any) -> None:
    _register_sign(sub)
    _register_verify(sub)


# --- sign ------------------------------------------------------------------------------------------

def _register_sign(sub: Any) -> None:
    p = add_command(
        sub, "sign", "make a signed MCUboot image (options as imgtool sign)",
        "mcuota image sign --key signing.pem --version 1.2.3+4 --header-size 0x200 --slot-size 0x20000 "
        "--pad-header app.bin app.signed.bin",
        description="Wrap firmware in an MCUboot header and TLVs and sign it, byte-compatible with imgtool "
                    "sign 2.5 (Ed25519 output is identical for the same key and options). IN may be .bin, "
                    ".hex, .srec or .elf; OUT is written as Intel HEX when it ends in .hex, else as a raw "
                    "binary. Without --pad-header, IN must start with --header-size empty bytes.")
    p.add_argument("input", metavar="IN", help="firmware: .bin, .hex, .srec or .elf")
    p.add_argument("output", metavar="OUT", help="signed image: .bin (raw) or .hex")
    p.add_argument("-k", "--key", metavar="FILE", help="private signing key (PEM); without it the image "
                   "carries only its SHA-256")
    p.add_argument("-v", "--version", required=True, help="image version major[.minor[.revision[+build]]]")
    p.add_argument("-H", "--header-size", required=True, type=int_arg, metavar="N",
                   help="header size: where the payload starts, e.g. 0x200")
    p.add_argument("-S", "--slot-size", required=True, type=int_arg, metavar="N",
                   help="slot size (of the secondary slot if they differ); image + trailer must fit")
    p.add_argument("--pad-header", action="store_true",
                   help="insert --header-size bytes before IN for the header (IN linked after the header)")
    p.add_argument("--pad", action="store_true",
                   help="pad to the slot size and write the trailer magic (requests a test swap)")
    p.add_argument("--confirm", action="store_true",
                   help="like --pad, and also set image_ok (a permanent swap / already-confirmed image)")
    p.add_argument("--align", type=int, choices=(1, 2, 4, 8, 16, 32), default=1,
                   help="flash write alignment used by the trailer (default 1)")
    p.add_argument("--max-align", type=int, choices=(8, 16, 32),
                   help="largest write alignment of the two slots (default max(8, --align))")
    p.add_argument("-s", "--security-counter", type=security_counter_arg, metavar="N|auto",
                   help="add a protected SEC_CNT TLV; 'auto' derives it from the version")
    p.add_argument("-d", "--dependencies", metavar="DEPS",
                   help='protected DEPENDENCY TLVs: "(IMAGE_ID,VERSION), ..." e.g. "(1,1.2.0)"')
    p.add_argument("-L", "--load-addr", "--load-address", dest="load_addr", type=int_arg, metavar="A",
                   help="RAM load address written to the header (sets the RAM_LOAD flag)")
    p.add_argument("-F", "--rom-fixed", type=int_arg, metavar="A",
                   help="flash address the image is built for (sets the ROM_FIXED flag)")
    p.add_argument("--non-bootable", action="store_true", help="set the NON_BOOTABLE flag")
    p.add_argument("-x", "--hex-addr", type=int_arg, metavar="A",
                   help="address of a .hex OUT (default: IN's address, less the header with --pad-header)")
    p.add_argument("--public-key-format", choices=("hash", "full"), default="hash",
                   help="reference the key by its SHA-256 (KEYHASH, default) or embed it (PUBKEY)")
    p.add_argument("-R", "--erased-val", type=erased_val_arg, default=0xFF, metavar="0|0xff",
                   help="value of erased flash, for padding and the trailer (default 0xff)")
    p.add_argument("-M", "--max-sectors", type=int_arg, default=128, metavar="N",
                   help="sectors the swap status area is sized for (default 128)")
    p.add_argument("--overwrite-only", action="store_true",
                   help="size the trailer for an overwrite-only bootloader (no swap status)")
    p.add_argument("--custom-tlv", nargs=2, action="append", default=[], metavar=("TAG", "VALUE"),
                   help="protected vendor TLV (TAG 0xa0-0xfffe; VALUE 0x<hex> or text); repeatable")
    add_password_options(p, "of an encrypted --key")
    p.set_defaults(handler=_sign)


def parse_dependencies(text: str) -> list[Dependency]:
    """``"(1,1.2.0), (2,0.3+4)"`` → dependencies; strict, unlike imgtool's regex scan."""
    from mcuota.errors import UsageError
    from mcuota.image.mcuboot import Dependency
    from mcuota.image.version import ImageVersion

    deps = [Dependency(int(m.group(1)), ImageVersion.parse(m.group(2))) for m in _DEPENDENCY.finditer(text)]
    leftover = _DEPENDENCY.sub("", text).replace(",", "").strip()
    if not deps or leftover:
        raise UsageError(f"invalid --dependencies {text!r}: expected \"(IMAGE_ID,VERSION), ...\"")
    return deps


def _sign(args: argparse.Namespace) -> int:
    from mcuota.image.mcuboot.files import sign_file
    from mcuota.image.version import ImageVersion

    version = ImageVersion.parse(args.version)
    dependencies = parse_dependencies(args.dependencies) if args.dependencies else []
    custom = [(int_arg(tag), custom_tlv_value(value)) for tag, value in args.custom_tlv]
    key = None
    if args.key:
        from mcuota.image.keys import load_private_key_file

        key = load_private_key_file(args.key, read_password(args))
    built = sign_file(
        args.input, args.output, header_size=args.header_size, hex_address=args.hex_addr, version=version,
        key=key, slot_size=args.slot_size, pad_header=args.pad_header, pad=args.pad, confirm=args.confirm,
        align=args.align, max_align=args.max_align, erased_val=args.erased_val, max_sectors=args.max_sectors,
        overwrite_only=args.overwrite_only, security_counter=args.security_counter,
        dependencies=dependencies, custom_tlvs=custom, load_address=args.load_addr or 0,
        rom_fixed=args.rom_fixed, non_bootable=args.non_bootable, public_key_format=args.public_key_format)
    signer = f"signed with {key.type}" if key else "unsigned (SHA-256 only)"
    trailer = (", padded with a confirmed trailer" if built.confirmed
               else ", padded with a test trailer" if built.padded else "")
    print(f"wrote {args.output}: MCUboot image {version}, {signer}, header {args.header_size:#x}, payload "
          f"{built.header.img_size} bytes, image {built.image_size} of {args.slot_size} slot bytes{trailer}")
    return 0


# --- verify ----------------------------------------------------------------------------------------

def _register_verify(sub: Any) -> None:
    p = add_command(
        sub, "verify", "check an image: MCUboot hash and signature, or a seed format's CRC/MD5",
        "mcuota image verify --key signing-pub.pem --key backup-pub.pem app.signed.bin",
        description="Check an image as its bootloader would. MCUboot (.bin or .hex): structure, SHA-256, "
                    "and the signature against each --key (public or private PEM); without --key only "
                    "the hash is checked, and the output says so. Seed formats (stm32-header, interrupt, "
                    "gizwits with its .json sidecar) are recognised and their CRC or MD5 checked. Exit "
                    "status: 0 valid, 1 invalid (malformed, bad hash or CRC, no matching signature), "
                    "2 unreadable input or bad usage.")
    p.add_argument("image", metavar="IMAGE", help="signed image: .bin or .hex")
    p.add_argument("-k", "--key", action="append", default=[], metavar="FILE",
                   help="trusted key (PEM, public or private); repeat for several")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_password_options(p, "of encrypted private --key files")
    from mcuota.cli.image_build_cmd import add_seed_verify_options

    add_seed_verify_options(p)
    p.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    from mcuota.errors import IntegrityError, UsageError
    from mcuota.image.mcuboot.files import verify_file

    seed = args.format is not None or args.crc is not None or args.slot is not None
    if not seed and not args.image.endswith(".hex"):
        from mcuota.cli.image_build_cmd import is_seed_image
        from mcuota.fsutil import read_input

        seed = is_seed_image(args.image, read_input(args.image, "image")[:64])
    if seed:
        if args.key:
            raise UsageError(f"{args.image} is a seed-format image: it carries a CRC or MD5, no signature "
                             "to check against --key")
        from mcuota.cli.image_build_cmd import run_check
        from mcuota.errors import FormatError

        try:
            return run_check(args)
        except FormatError as exc:  # a malformed image is an invalid one: exit 1, as for MCUboot
            raise IntegrityError(str(exc)) from None

    keys = []
    if args.key:
        from mcuota.image.keys import load_public_key_file

        password = read_password(args)
        keys = [load_public_key_file(path, password) for path in args.key]
    result = verify_file(args.image, keys)
    if args.json:
        print_json({"file": args.image, **result.to_dict()})
    if not result.ok:
        raise IntegrityError(f"{args.image}: invalid ({result.status}): {result.reason}")
    if not args.json:
        print(f"{args.image}: valid, version {result.version}: {result.reason}")
        print(f"  sha256 {result.hash.hex() if result.hash else '-'}")
    return 0
