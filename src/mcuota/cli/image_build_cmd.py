"""``mcuota image build`` (the seed bootloaders' own image formats), their verification (reached
through ``mcuota image verify``, which recognises them: exit 1 when an image does not check out) and
``mcuota image checksum``.

Only argparse is imported here at start-up; each handler imports the format module it needs. The
rules themselves (ranges, sizes, CRCs) live in ``mcuota.image``; this module maps options to them and
checks one thing only a file can tell: an input that carries addresses (.hex, .srec, .elf) must be
linked where the format will run it, or the device would jump into the wrong place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcuota.cli.common import add_command, int_arg

FORMATS = ("stm32-header", "gizwits", "interrupt")
IMAGE_TYPES = ("loader", "app", "updater")
# Kept in step with mcuota.image.checksums.CHECKSUM_NAMES by a test; importing it here would load
# hashlib at every start-up.
CHECKSUM_HELP = "crc32, crc32-stm32, crc16-xmodem, md5, sha256"

Locator = Callable[[int], int]              # expected vector table address -> the one to use
Built = tuple[list[tuple[str, bytes]], str]  # (path, bytes) to write, and the line to print


def register(sub: Any) -> None:
    _register_build(sub)
    _register_checksum(sub)


def _register_build(sub: Any) -> None:
    parser = add_command(
        sub, "build", "wrap an application in a seed bootloader's image format",
        "mcuota image build --format interrupt --version 1.2.3 --git-sha 1a2b3c4d app.elf app-1.2.3.img\n"
        "  mcuota image build --format gizwits --version 03030006 app.hex app.bin   # + app.bin.json",
        description=(
            "Wrap an application (.bin, .hex, .srec or .elf) in one of the seed bootloaders' formats:\n"
            "  stm32-header  16-byte header (magic, size, crc32, version) before the payload (seed 001)\n"
            "  gizwits       the raw .bin (max 26 KB) plus OUT.json with size, MD5 and softVer (seed 000)\n"
            "  interrupt     32-byte header, 0xFF up to the vector table, the application (seed 004)\n"
            "A .hex/.srec/.elf input must be linked at the format's application address; a .bin is\n"
            "taken to be. OUT is always a raw binary, written atomically (gizwits: both files or none)."),
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="the image format")
    parser.add_argument("--version", dest="image_version", metavar="V",
                        help="stm32-header: u32 integer (default 0); gizwits: 8-digit softVer or "
                             "MM.mm.RRRR (required); interrupt: major.minor.patch, each 0..255 "
                             "(default 0.0.0)")
    parser.add_argument("--max-size", type=int_arg, metavar="N",
                        help="capacity: the largest application (stm32-header, gizwits) or whole "
                             "image (interrupt); default: gizwits 26K, interrupt the slot's size")
    parser.add_argument("--app-address", type=int_arg, metavar="ADDR",
                        help="where the application's vector table runs (default: stm32-header "
                             "0x08004400, gizwits 0x08003000, interrupt slot + header region)")
    stm32 = parser.add_argument_group("stm32-header options")
    stm32.add_argument("--crc", choices=("crc32", "crc32-stm32"),
                       help="CRC variant the bootloader checks (default crc32 = zlib; crc32-stm32 = the "
                            "hardware unit, payload padded to whole words)")
    gizwits = parser.add_argument_group("gizwits options")
    gizwits.add_argument("--hard-ver", metavar="HV", help="8-character hardVer to record in the sidecar")
    interrupt = parser.add_argument_group("interrupt options")
    interrupt.add_argument("--type", dest="image_type", choices=IMAGE_TYPES,
                           help="image type (default app)")
    interrupt.add_argument("--slot", type=int_arg, metavar="ADDR",
                           help="slot address (default: loader 0x08004000, app/updater 0x08020000)")
    interrupt.add_argument("--header-region", type=int_arg, metavar="N",
                           help="bytes from the slot start to the vector table (default 0x80)")
    interrupt.add_argument("--git-sha", metavar="SHA", help="commit id for the header (8 characters kept)")
    parser.add_argument("input", metavar="IN", help="application: .bin, .hex, .srec or .elf")
    parser.add_argument("output", metavar="OUT", help="image to write (raw binary)")
    parser.set_defaults(handler=run_build)


def add_seed_verify_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``image verify`` that apply to the seed formats (the verb itself is in image_sign_cmd)."""
    parser.add_argument("--format", choices=FORMATS,
                        help="a seed format to check IMAGE as (default: recognise it)")
    parser.add_argument("--crc", choices=("crc32", "crc32-stm32"),
                        help="stm32-header: the variant the bootloader uses (default: either)")
    parser.add_argument("--slot", type=int_arg, metavar="ADDR",
                        help="interrupt: also check the vector table lies in the image in this slot")


def is_seed_image(path: str, data: bytes) -> bool:
    """Whether ``image verify`` should check ``path`` as a seed format rather than as MCUboot."""
    from mcuota.image import interrupt, stm32_header

    return (stm32_header.looks_like(data) or interrupt.looks_like(data) or path.endswith(".json")
            or Path(f"{path}.json").exists())


def _register_checksum(sub: Any) -> None:
    parser = add_command(
        sub, "checksum", "print checksums of a file (the ones the seed bootloaders use)",
        "mcuota image checksum --algo crc32 --algo crc32-stm32 app.bin",
        description=(
            f"Print checksums of FILE's bytes: {CHECKSUM_HELP}. CRCs print as their value in hex\n"
            "(crc32-stm32 feeds little-endian words and ignores a trailing partial word, as\n"
            "srec_cat -stm32-l-e does). With --firmware a .hex/.srec/.elf is decoded first."),
    )
    parser.add_argument("--algo", action="append", metavar="NAME",
                        help=f"algorithm, repeatable (default: all of {CHECKSUM_HELP})")
    parser.add_argument("--firmware", action="store_true",
                        help="checksum the firmware bytes a .hex/.srec/.elf holds, not the file")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of lines")
    parser.add_argument("file", metavar="FILE")
    parser.set_defaults(handler=run_checksum)


# ---------------------------------------------------------------------------------------- build

def run_build(args: argparse.Namespace) -> int:
    from mcuota.errors import UsageError
    from mcuota.image.firmware import load_firmware

    _refuse_foreign_options(args)
    _check_output_name(args.output)
    firmware = load_firmware(args.input)
    payload = firmware.contiguous()
    start = firmware.start if firmware.source_kind != "bin" else None

    def located(expected: int) -> int:
        """The vector table address: the input's own, which must be the expected one."""
        if start is not None and start != expected:
            raise UsageError(f"{args.input} is linked at 0x{start:08x}, but {args.format} runs the "
                             f"application at 0x{expected:08x}")
        return expected

    if args.format == "stm32-header":
        outputs, summary = _build_stm32(args, payload, located)
    elif args.format == "gizwits":
        outputs, summary = _build_gizwits(args, payload, located)
    else:
        outputs, summary = _build_interrupt(args, payload, located)
    _write_all(outputs)
    print(summary)
    return 0


_FORMAT_OPTIONS = {
    "crc": ("--crc", "stm32-header"),
    "hard_ver": ("--hard-ver", "gizwits"),
    "image_type": ("--type", "interrupt"),
    "slot": ("--slot", "interrupt"),
    "header_region": ("--header-region", "interrupt"),
    "git_sha": ("--git-sha", "interrupt"),
}


def _refuse_foreign_options(args: argparse.Namespace) -> None:
    """An option for another format is a mistake worth a message, not a silently ignored value."""
    from mcuota.errors import UsageError

    for dest, (option, owner) in _FORMAT_OPTIONS.items():
        if getattr(args, dest) is not None and args.format != owner:
            raise UsageError(f"{option} applies only to --format {owner}")


def _check_output_name(output: str) -> None:
    from mcuota.errors import UsageError

    if Path(output).suffix.lower() in (".hex", ".ihex", ".ihx", ".srec", ".s19", ".s28", ".s37",
                                       ".mot", ".elf", ".json"):
        raise UsageError(f"{output}: image build writes a raw binary; give OUT a .bin or .img name "
                         f"(mcuota image convert makes other containers)")


def _build_stm32(args: argparse.Namespace, payload: bytes, located: Locator) -> Built:
    from mcuota.errors import UsageError
    from mcuota.image import stm32_header

    located(stm32_header.APP_ADDRESS if args.app_address is None else args.app_address)
    text = "0" if args.image_version is None else args.image_version
    try:
        version = int(text.replace("_", ""), 0)
    except ValueError:
        raise UsageError(f"stm32-header --version must be an integer 0..{stm32_header.U32_MAX} "
                         f"(the header's u32), not {text!r}") from None
    crc = stm32_header.crc_variant(args.crc or "crc32")
    image = stm32_header.build_stm32_image(payload, version, crc=crc, max_size=args.max_size)
    header = stm32_header.Stm32Header.unpack(image)
    return [(args.output, image)], (
        f"wrote {args.output}: stm32-header, {len(image)} bytes (payload {header.size}, "
        f"{crc} 0x{header.crc:08x}, version {header.version})")


def _build_gizwits(args: argparse.Namespace, payload: bytes, located: Locator) -> Built:
    from mcuota.errors import UsageError
    from mcuota.image import gizwits
    from mcuota.image.version import ImageVersion

    located(gizwits.APP_ADDRESS if args.app_address is None else args.app_address)
    if args.image_version is None:
        raise UsageError("gizwits needs --version: the 8-digit softVer (e.g. 03030006) or MM.mm.RRRR")
    text = args.image_version.strip()
    soft_ver = (gizwits.soft_ver_from_version(ImageVersion.parse(text)) if "." in text
                else gizwits.check_soft_ver(text))
    max_size = gizwits.APP_SIZE if args.max_size is None else args.max_size
    metadata = gizwits.build_gizwits_metadata(payload, soft_ver, args.hard_ver, max_size=max_size)
    sidecar = args.output + ".json"
    return [(args.output, payload), (sidecar, gizwits.sidecar_json(metadata).encode())], (
        f"wrote {args.output} and {sidecar}: gizwits, {metadata.size} bytes, md5 {metadata.md5_hex}, "
        f"softVer {metadata.soft_ver}")


def _build_interrupt(args: argparse.Namespace, payload: bytes, located: Locator) -> Built:
    from mcuota.image import interrupt
    from mcuota.image.version import ImageVersion

    image_type = interrupt.ImageType[(args.image_type or "app").upper()]
    slot, known_size = interrupt.default_slot(image_type)
    slot_size: int | None = known_size
    if args.slot is not None and args.slot != slot:
        slot, slot_size = args.slot, None
    region = interrupt.DEFAULT_HEADER_REGION if args.header_region is None else args.header_region
    vectors = located(slot + region if args.app_address is None else args.app_address)
    version = ImageVersion.parse("0.0.0" if args.image_version is None else args.image_version)
    image = interrupt.build_interrupt_image(
        payload, version, slot=slot, header_region=region, image_type=image_type, vector_addr=vectors,
        git_sha=args.git_sha or "", max_size=slot_size if args.max_size is None else args.max_size)
    header = interrupt.InterruptHeader.unpack(image)
    return [(args.output, image)], (
        f"wrote {args.output}: interrupt {image_type.name.lower()} {header.version}, {len(image)} bytes "
        f"for slot 0x{slot:08x} (vectors 0x{header.vector_addr:08x}, crc32 0x{header.crc:08x})")


def _write_all(outputs: list[tuple[str, bytes]]) -> None:
    """Write every output atomically; if one fails, remove the ones already written, so a .bin never
    stands without the sidecar that describes it."""
    from mcuota.errors import UsageError
    from mcuota.fsutil import atomic_write

    written: list[str] = []
    try:
        for path, data in outputs:
            try:
                atomic_write(path, data)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
            written.append(path)
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------- check

def run_check(args: argparse.Namespace) -> int:
    """``image verify`` for a seed-format image: exit 0 valid, 1 CRC/MD5 mismatch, 2 malformed."""
    from mcuota.errors import FormatError, IntegrityError, UsageError
    from mcuota.fsutil import read_input
    from mcuota.image import gizwits, interrupt, stm32_header

    path = Path(args.image)
    fmt = args.format
    data = b"" if fmt == "gizwits" or path.suffix == ".json" else read_input(path, "image")
    if fmt is None:
        if stm32_header.looks_like(data):
            fmt = "stm32-header"
        elif interrupt.looks_like(data):
            fmt = "interrupt"
        elif path.suffix == ".json" or Path(f"{path}.json").exists():
            fmt = "gizwits"
        else:
            raise FormatError(f"{path}: not a stm32-header or interrupt image (no known magic at offset 0) "
                              f"and no gizwits sidecar {path}.json; give --format")
    if args.crc is not None and fmt != "stm32-header":
        raise UsageError(f"--crc applies only to stm32-header images, and {path} is {fmt}")

    if fmt == "gizwits":
        if path.suffix == ".json":
            sidecar, binary = path, path.with_suffix("")
        else:
            sidecar, binary = Path(f"{path}.json"), path
        metadata = gizwits.parse_sidecar(read_input(sidecar, "gizwits sidecar"))
        result = gizwits.verify_gizwits_image(read_input(binary, "image"), metadata)
        if not result.ok:
            raise IntegrityError(f"{binary}: {result.reason}")
        print(f"{binary}: valid gizwits image ({metadata.size} bytes, md5 {metadata.md5_hex}, "
              f"softVer {metadata.soft_ver})")
        return 0

    if fmt == "stm32-header":
        variants = (args.crc,) if args.crc else stm32_header.CRC_VARIANTS
        results = [stm32_header.verify_stm32_image(data, crc=v) for v in variants]
        good = [r for r in results if r.ok]
        if not good:
            raise IntegrityError(f"{path}: " + "; ".join(r.reason for r in results))
        header = stm32_header.parse_stm32_image(data).header
        print(f"{path}: valid stm32-header image ({header.size} bytes, {good[0].variant} "
              f"0x{header.crc:08x}, version {header.version})")
        return 0

    check = interrupt.verify_interrupt_image(data, slot=args.slot)
    if not check.ok:
        raise IntegrityError(f"{path}: {check.reason}")
    image = interrupt.parse_interrupt_image(data)
    print(f"{path}: valid interrupt {image.image_type.name.lower()} image {image.header.version} "
          f"({image.header.data_size} bytes after the header, crc32 0x{check.actual_crc:08x})")
    return 0


# ------------------------------------------------------------------------------------- checksum

def run_checksum(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.fsutil import read_input
    from mcuota.image import checksums

    names = args.algo or list(checksums.CHECKSUM_NAMES)
    summers = [checksums.new(name) for name in names]  # unknown names fail before any reading
    if args.firmware:
        from mcuota.image.firmware import load_firmware

        data = load_firmware(args.file).contiguous()
    else:
        data = read_input(args.file, "file")
    for summer in summers:
        summer.update(data)
    if args.json:
        print_json({summer.name: summer.hexdigest() for summer in summers})
    else:
        width = max(len(summer.name) for summer in summers)
        for summer in summers:
            print(f"{summer.name:<{width}}  {summer.hexdigest()}")
    return 0
