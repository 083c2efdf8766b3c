"""Seed 001's OTA image: a 16-byte header in front of the raw application, and the 20-byte
application header record its bootloader keeps in flash.

The OTA image is ``header || payload`` with the header packed ``<IIII``: magic 0xABCDEFAB, payload
size, CRC-32 of the payload, version (a plain u32; the seed's tool writes 0x04). The seed's prose
says the script "appends" the metadata, but its bootloader reads the header *first* from the stream
and only then knows how many bytes follow; the header is therefore prepended, as the bootloader
needs and as decided for mcuota.

The header does not say which CRC it holds, so the variant is pinned per image and named:

* ``crc32`` (default) — zlib's CRC-32. The seed's image tool is a Python script whose "CRC32" is
  ``zlib.crc32``, and its bootloader folds in chunks of any length as they arrive from the stream,
  which a software CRC-32 does and the word-fed hardware unit cannot.
* ``crc32-stm32`` — for bootloaders that use the STM32 CRC unit. The unit only takes whole words,
  so :func:`build_stm32_image` pads the payload to a multiple of 4 with 0xFF (what erased flash
  reads anyway) and the size field counts the padding; no byte is left outside the CRC. This is the
  fix srec_cat itself recommends (``-fill 0xFF -within IN -range-padding 4`` before ``-stm32-l-e``).

:func:`describe` reports which variant an image's CRC matches, so an image from elsewhere can be
identified rather than guessed at.

The in-flash record ``{ota_flag, magic, size, crc, version}`` is what the bootloader writes after a
successful update (flag 0). The application requests an update by programming the flag to 1. Erased
flash reads 0xFFFFFFFF, and setting a 0 back to 1 needs an erase, so every value but 1 — including
the erased all-ones — means "no request".
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass, fields
from typing import Any, Literal, get_args

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image.checksums import crc32, crc32_stm32

CrcVariant = Literal["crc32", "crc32-stm32"]
CRC_VARIANTS: tuple[CrcVariant, ...] = get_args(CrcVariant)

MAGIC = 0xABCDEFAB
HEADER_SIZE = 16
APP_HEADER_SIZE = 20
U32_MAX = 0xFFFFFFFF

# Where seed 001's layout (as in the stm32-header-f103 sample) puts things: the record in its own
# flash page, the application right after that page.
APP_HEADER_ADDRESS = 0x08004000
APP_ADDRESS = 0x08004400

OTA_FLAG_NONE = 0
OTA_FLAG_REQUEST = 1
OTA_FLAG_ERASED = 0xFFFFFFFF

_HEADER = struct.Struct("<IIII")       # the one description of Stm32Header's field order
_APP_HEADER = struct.Struct("<IIIII")  # the one description of AppHeader's field order


@dataclass(frozen=True)
class Stm32Header:
    """The 16-byte OTA image header, fields in :data:`_HEADER` order."""

    magic: int
    size: int
    crc: int
    version: int

    def pack(self) -> bytes:
        return _pack_u32s(_HEADER, self, "stm32-header")

    @classmethod
    def unpack(cls, data: bytes) -> Stm32Header:
        """Decode the first 16 bytes; fewer is a :class:`FormatError`. Field values are not judged."""
        if len(data) < HEADER_SIZE:
            raise FormatError(f"stm32-header: truncated header: {len(data)} of {HEADER_SIZE} bytes")
        return cls(*_HEADER.unpack_from(data))


@dataclass(frozen=True)
class Stm32Image:
    header: Stm32Header
    payload: bytes


@dataclass(frozen=True)
class Stm32Verification:
    """The result of checking an image's CRC under one variant."""

    ok: bool
    variant: CrcVariant
    expected_crc: int
    actual_crc: int
    reason: str = ""


def _pack_u32s(layout: struct.Struct, record: Stm32Header | AppHeader, what: str) -> bytes:
    """Pack a record of u32 fields, naming the field that does not fit instead of a struct.error."""
    for item in fields(record):
        value = getattr(record, item.name)
        if not 0 <= value <= U32_MAX:
            raise UsageError(f"{what}: {item.name} {value} is not a u32")
    return layout.pack(*astuple(record))


def crc_variant(crc: str) -> CrcVariant:
    """Name → variant, refusing names the header format does not pin."""
    for variant in CRC_VARIANTS:
        if crc == variant:
            return variant
    raise UsageError(f"unknown CRC variant {crc!r} for stm32-header; known: {', '.join(CRC_VARIANTS)}")


def payload_crc(payload: bytes, crc: CrcVariant) -> int:
    """The CRC the header holds for ``payload`` under ``crc`` (0xFFFFFFFF-initialised STM32 unit)."""
    return crc32(payload) if crc_variant(crc) == "crc32" else crc32_stm32(payload)


def build_stm32_image(payload: bytes, version: int, *, crc: CrcVariant = "crc32",
                      max_size: int | None = None) -> bytes:
    """``header || payload``; with ``crc32-stm32`` the payload is first padded to a whole word."""
    variant = crc_variant(crc)
    if not 0 <= version <= U32_MAX:
        raise UsageError(f"stm32-header version {version} is out of range (0..{U32_MAX})")
    if not payload:
        raise FormatError("stm32-header: the application is empty (the bootloader rejects size 0)")
    body = bytes(payload)
    if variant == "crc32-stm32" and len(body) % 4:
        body += b"\xff" * (4 - len(body) % 4)
    limit = U32_MAX if max_size is None else max_size
    if len(body) > limit:
        raise CapacityError(f"stm32-header: application is {len(body)} bytes, over the {limit}-byte limit")
    header = Stm32Header(MAGIC, len(body), payload_crc(body, variant), version)
    return header.pack() + body


def parse_stm32_image(data: bytes) -> Stm32Image:
    """Split an image into header and payload, refusing anything the seed's bootloader would refuse
    and any length that disagrees with the header (the bootloader reads exactly ``size`` bytes)."""
    header = Stm32Header.unpack(data)
    if header.magic != MAGIC:
        raise FormatError(f"stm32-header: bad magic 0x{header.magic:08x} at offset 0 "
                          f"(expected 0x{MAGIC:08x})")
    if header.size == 0:
        raise FormatError("stm32-header: size 0 at offset 4 (the bootloader rejects empty images)")
    available = len(data) - HEADER_SIZE
    if available < header.size:
        raise FormatError(f"stm32-header: truncated payload: header at offset 4 says {header.size} bytes, "
                          f"{available} follow")
    if available > header.size:
        raise FormatError(f"stm32-header: {available - header.size} unexpected bytes at offset "
                          f"{HEADER_SIZE + header.size} after the {header.size}-byte payload")
    return Stm32Image(header, bytes(data[HEADER_SIZE:]))


def verify_stm32_image(data: bytes, *, crc: CrcVariant = "crc32") -> Stm32Verification:
    """Check the payload against the header's CRC under ``crc``; a malformed image raises instead.

    Under ``crc32-stm32`` a payload that does not end on a word boundary is invalid: its last bytes
    would be outside the CRC the unit computes.
    """
    variant = crc_variant(crc)
    image = parse_stm32_image(data)
    actual = payload_crc(image.payload, variant)
    expected = image.header.crc
    if variant == "crc32-stm32" and len(image.payload) % 4:
        return Stm32Verification(False, variant, expected, actual,
                                 f"payload of {len(image.payload)} bytes is not whole words: "
                                 f"crc32-stm32 would not cover its last {len(image.payload) % 4}")
    if actual != expected:
        return Stm32Verification(False, variant, expected, actual,
                                 f"{variant} mismatch: header says 0x{expected:08x}, "
                                 f"payload gives 0x{actual:08x}")
    return Stm32Verification(True, variant, expected, actual)


def matching_variants(data: bytes) -> tuple[CrcVariant, ...]:
    """The CRC variants under which the image verifies (usually one, none when corrupt)."""
    return tuple(v for v in CRC_VARIANTS if verify_stm32_image(data, crc=v).ok)


def looks_like(data: bytes) -> bool:
    """Cheap recognition for ``image info``: the magic in the first word."""
    return len(data) >= HEADER_SIZE and _HEADER.unpack_from(data)[0] == MAGIC


def describe(data: bytes) -> dict[str, Any]:
    """JSON-able summary, naming the CRC variant that matches (``None`` when neither does)."""
    image = parse_stm32_image(data)
    variants = matching_variants(data)
    return {
        "format": "stm32-header",
        "header_size": HEADER_SIZE,
        "magic": f"0x{image.header.magic:08x}",
        "size": image.header.size,
        "crc": f"0x{image.header.crc:08x}",
        "crc_variant": variants[0] if variants else None,
        "crc_ok": bool(variants),
        "version": image.header.version,
    }


@dataclass(frozen=True)
class AppHeader:
    """The bootloader's in-flash record, fields in :data:`_APP_HEADER` order."""

    ota_flag: int
    magic: int
    size: int
    crc: int
    version: int

    @property
    def ota_requested(self) -> bool:
        """Only an explicit 1 is a request; 0 and erased flash (all ones) are not."""
        return self.ota_flag == OTA_FLAG_REQUEST

    @property
    def has_app(self) -> bool:
        """The record describes an installed application (an erased page does not)."""
        return self.magic == MAGIC


def app_header_for(header: Stm32Header, ota_flag: int = OTA_FLAG_NONE) -> AppHeader:
    """The record the bootloader writes once the image behind ``header`` is flashed and checked."""
    return AppHeader(ota_flag, header.magic, header.size, header.crc, header.version)


def encode_app_header(record: AppHeader) -> bytes:
    return _pack_u32s(_APP_HEADER, record, "stm32-header record")


def decode_app_header(data: bytes) -> AppHeader:
    """Decode the 20-byte record (read from flash, so any values, erased ones included, are valid)."""
    if len(data) < APP_HEADER_SIZE:
        raise FormatError(f"stm32-header record: truncated: {len(data)} of {APP_HEADER_SIZE} bytes")
    return AppHeader(*_APP_HEADER.unpack_from(data))
