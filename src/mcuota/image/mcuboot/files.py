"""Thin file wrappers over the bytes API, shared by ``mcuota image sign | verify`` and anything else that
signs or checks image files (a server accepting uploads, a build script).

Inputs may be raw binaries, Intel HEX, SREC or ELF; a signed image is written as Intel HEX when its name
ends in .hex, else as a raw binary (imgtool's rule). A raw-binary input never loads the HEX/SREC/ELF
reader: importing pyelftools alone costs more than signing a 1 MiB image, and signing runs in every
firmware build. Outputs go through :func:`~mcuota.fsutil.atomic_write`, after everything is computed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcuota.errors import FormatError, UsageError
from mcuota.fsutil import atomic_write, read_input
from mcuota.image.mcuboot.header import looks_like_mcuboot

if TYPE_CHECKING:
    from mcuota.image.keys import PublicKey
    from mcuota.image.mcuboot.build import BuiltImage
    from mcuota.image.mcuboot.verify import VerifyResult

HEX_SUFFIXES = (".hex", ".ihex", ".ihx")
PathLike = str | os.PathLike[str]


def _maybe_records_or_elf(data: bytes) -> bool:
    """Whether bytes could be ELF, HEX or SREC; only then is the full reader loaded to decide."""
    head = data[:64].lstrip()
    return data[:4] == b"\x7fELF" or head[:1] in (b":", b"S")


def read_firmware_file(path: PathLike) -> tuple[bytes, int | None]:
    """Firmware bytes and their start address (None for a raw binary, which carries none).

    Gaps in HEX/SREC/ELF read as 0xff, like imgtool's IntelHex reader, so both tools hash the same bytes.
    """
    data = read_input(path, "firmware")
    if not data:
        raise FormatError(f"{path} is empty")
    if _maybe_records_or_elf(data):
        from mcuota.image.firmware import parse_firmware  # noqa: PLC0415 (lazy: see module doc)

        firmware = parse_firmware(data, name=str(path))
        if firmware.source_kind != "bin":
            return firmware.contiguous(0xFF), firmware.start
    return data, None


def read_image_file(path: PathLike) -> bytes:
    """A signed image's bytes from a .bin or an Intel HEX file (gaps read as 0xff); anything that is not
    HEX after all is returned raw, for the verifier to call malformed."""
    data = read_input(path, "image")
    if looks_like_mcuboot(data) or not _maybe_records_or_elf(data):
        return data
    from mcuota.image.firmware import parse_firmware  # noqa: PLC0415 (lazy: see module doc)

    try:
        return parse_firmware(data, name=str(path)).contiguous(0xFF)
    except FormatError:
        return data


def render_image(built: BuiltImage, output: PathLike, address: int | None) -> bytes:
    """The bytes to store for ``output``: raw, or Intel HEX at ``address`` carrying the image and only
    the non-erased trailer bytes (as imgtool's HEX output does)."""
    if Path(output).suffix.lower() not in HEX_SUFFIXES:
        return built.data
    if address is None:
        raise UsageError(f"cannot write {output} as HEX: the input is a raw binary with no address; "
                         "give --hex-addr")
    from mcuota.image.firmware import Firmware, Segment, render_firmware  # noqa: PLC0415

    pieces = [Segment(address, built.data[: built.image_size])]
    pieces += [Segment(address + offset, value) for offset, value in built.trailer_writes()]
    return render_firmware(Firmware.from_segments(pieces, source_kind="hex", label=str(output)), "hex",
                           record_size=16)


def sign_file(source: PathLike, output: PathLike, *, header_size: int, hex_address: int | None = None,
              **options: Any) -> BuiltImage:
    """Read firmware, :func:`~mcuota.image.mcuboot.build.build_image` it with ``options``, write ``output``.

    A HEX output goes at ``hex_address``, by default the input's own address (less the header when
    ``pad_header`` inserted one).
    """
    from mcuota.image.mcuboot.build import build_image  # noqa: PLC0415 (verifying never needs it)

    payload, address = read_firmware_file(source)
    built = build_image(payload, header_size=header_size, **options)
    if hex_address is None and address is not None:
        hex_address = address - header_size if options.get("pad_header") else address
        if hex_address < 0:
            raise UsageError(f"{source} starts at 0x{address:x}, below the {header_size:#x}-byte header")
    atomic_write(output, render_image(built, output, hex_address))
    return built


def verify_file(path: PathLike, keys: Sequence[PublicKey] = ()) -> VerifyResult:
    """:func:`~mcuota.image.mcuboot.verify.verify_image` on a .bin or .hex file; unreadable files raise
    UsageError, bad images come back as a result."""
    from mcuota.image.mcuboot.verify import verify_image  # noqa: PLC0415 (signing never needs it)

    return verify_image(read_image_file(path), keys)
