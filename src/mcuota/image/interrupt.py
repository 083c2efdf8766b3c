"""Seed 004 (Interrupt's "Device Firmware Update Cookbook"): a 32-byte header at the start of a slot.

The bootloader boots the first of slot 1 (loader) and slot 2 (app) whose header has the magic and
whose CRC holds, so the header is the image's commit mark: an updater writes everything after the
header first, checks the CRC, and programs the header last; it invalidates an image by programming
zeros over the header (0 can always be programmed over anything, no erase needed).

Layout, packed little-endian (defined once, in :class:`InterruptHeader`'s field metadata)::

    u16 magic 0xCAFE · u16 hdr_version 1 · u32 crc · u32 data_size · u8 image_type (1 loader,
    2 app, 3 updater) · u8 major · u8 minor · u8 patch · u32 vector_addr · u32 reserved · char[8] git_sha

``crc`` is ``zlib.crc32(image[32:])`` and ``data_size`` is ``len(image[32:])``. An application's vector
table cannot sit right after a 32-byte header: VTOR needs at least 128-byte alignment. The sample is
linked with its vectors at slot + 0x80, so an image has a *header region* (0x80 by default): the
header, then 0xFF (erased flash) up to the vector table. The fill is part of ``image[32:]`` and so
covered by the CRC and counted in ``data_size``, and ``vector_addr`` must be slot + header region —
a mismatch means the application was linked for another place and would crash when started.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import astuple, dataclass, field, fields
from enum import IntEnum
from typing import Any

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image.version import ImageVersion

FORMAT = "interrupt"
MAGIC = 0xCAFE
HEADER_VERSION = 1
HEADER_SIZE = 32
DEFAULT_HEADER_REGION = 0x80
VECTOR_ALIGNMENT = 128  # VTOR.TBLOFF starts at bit 7 on every Cortex-M

BOOT_ADDRESS = 0x08000000
SLOT1_ADDRESS, SLOT1_SIZE = 0x08004000, 112 * 1024
SLOT2_ADDRESS, SLOT2_SIZE = 0x08020000, 896 * 1024


class ImageType(IntEnum):
    LOADER = 1
    APP = 2
    UPDATER = 3


def default_slot(image_type: ImageType) -> tuple[int, int]:
    """(address, size) of the slot an image of this type goes to: the loader in slot 1, the
    application and the updater (which replaces the application to rewrite the loader) in slot 2."""
    if image_type == ImageType.LOADER:
        return SLOT1_ADDRESS, SLOT1_SIZE
    return SLOT2_ADDRESS, SLOT2_SIZE


def _u(fmt: str) -> Any:
    return field(metadata={"fmt": fmt})


@dataclass(frozen=True)
class InterruptHeader:
    """The header; each field's ``fmt`` metadata is the only statement of the binary layout."""

    magic: int = _u("H")
    hdr_version: int = _u("H")
    crc: int = _u("I")
    data_size: int = _u("I")
    image_type: int = _u("B")
    major: int = _u("B")
    minor: int = _u("B")
    patch: int = _u("B")
    vector_addr: int = _u("I")
    reserved: int = _u("I")
    git_sha: bytes = _u("8s")

    def pack(self) -> bytes:
        for item in fields(self):
            value = getattr(self, item.name)
            code = item.metadata["fmt"]
            if code == "8s":
                if len(value) > 8:
                    raise UsageError(f"interrupt header: {item.name} is longer than 8 bytes")
            elif not 0 <= value < 1 << (8 * struct.calcsize(code)):
                raise UsageError(f"interrupt header: {item.name} {value} does not fit its "
                                 f"{8 * struct.calcsize(code)}-bit field")
        return _HEADER.pack(*astuple(self))

    @classmethod
    def unpack(cls, data: bytes) -> InterruptHeader:
        """Decode the first 32 bytes without judging them (see :func:`parse_interrupt_header`)."""
        if len(data) < HEADER_SIZE:
            raise FormatError(f"interrupt: truncated header: {len(data)} of {HEADER_SIZE} bytes")
        return cls(*_HEADER.unpack_from(data))

    @property
    def version(self) -> ImageVersion:
        return ImageVersion(self.major, self.minor, self.patch)

    @property
    def git_sha_text(self) -> str:
        return self.git_sha.rstrip(b"\0").decode("ascii", errors="replace")


_HEADER = struct.Struct("<" + "".join(item.metadata["fmt"] for item in fields(InterruptHeader)))
assert _HEADER.size == HEADER_SIZE


@dataclass(frozen=True)
class InterruptImage:
    header: InterruptHeader
    data: bytes  # image[32:]: the fill up to the vector table, then the application

    @property
    def image_type(self) -> ImageType:
        return ImageType(self.header.image_type)


@dataclass(frozen=True)
class InterruptVerification:
    ok: bool
    expected_crc: int
    actual_crc: int
    reason: str = ""


def _git_sha_field(git_sha: str) -> bytes:
    """``char[8]``: a short id as is; a full hex commit id shortened to 8, as git's short ids are."""
    if not git_sha.isascii() or not git_sha.isprintable():
        raise UsageError(f"git sha {git_sha!r} must be printable ASCII")
    if len(git_sha) > 8:
        if not all(c in "0123456789abcdefABCDEF" for c in git_sha):
            raise UsageError(f"git sha {git_sha!r} is longer than 8 characters and not a hex commit id")
        git_sha = git_sha[:8]
    return git_sha.encode("ascii").ljust(8, b"\0")


def _version_fields(version: ImageVersion) -> tuple[int, int, int]:
    if version.revision > 0xFF:
        raise UsageError(f"interrupt version patch {version.revision} is out of range (0..255)")
    if version.build:
        raise UsageError(f"version {version}: the interrupt header has no build number")
    return version.major, version.minor, version.revision


def build_interrupt_image(app: bytes, version: ImageVersion, *, slot: int = SLOT2_ADDRESS,
                          header_region: int = DEFAULT_HEADER_REGION,
                          image_type: ImageType = ImageType.APP, vector_addr: int | None = None,
                          git_sha: str = "", max_size: int | None = None) -> bytes:
    """Header, 0xFF fill up to ``header_region``, then ``app`` (whose vector table runs at
    ``vector_addr``, which must be ``slot + header_region``; ``None`` means exactly that).

    ``max_size`` is the slot size: the whole image, header included, must fit.
    """
    major, minor, patch = _version_fields(version)
    if not app:
        raise FormatError("interrupt: the application is empty")
    if header_region < HEADER_SIZE:
        raise UsageError(f"interrupt header region 0x{header_region:x} is smaller than the "
                         f"{HEADER_SIZE}-byte header")
    expected_vectors = slot + header_region
    if vector_addr is None:
        vector_addr = expected_vectors
    if vector_addr != expected_vectors:
        raise UsageError(f"interrupt: application vector table is at 0x{vector_addr:08x}, but slot "
                         f"0x{slot:08x} + header region 0x{header_region:x} = 0x{expected_vectors:08x}")
    if vector_addr % VECTOR_ALIGNMENT:
        raise UsageError(f"interrupt: vector table address 0x{vector_addr:08x} is not "
                         f"{VECTOR_ALIGNMENT}-byte aligned (VTOR cannot point there)")
    data = b"\xff" * (header_region - HEADER_SIZE) + bytes(app)
    total = HEADER_SIZE + len(data)
    if max_size is not None and total > max_size:
        raise CapacityError(f"interrupt: image is {total} bytes, over the {max_size}-byte slot")
    if total > 0xFFFFFFFF:
        raise CapacityError(f"interrupt: image is {total} bytes, over the u32 data_size field")
    header = InterruptHeader(MAGIC, HEADER_VERSION, zlib.crc32(data), len(data), int(image_type),
                             major, minor, patch, vector_addr, 0, _git_sha_field(git_sha))
    return header.pack() + data


def parse_interrupt_header(data: bytes) -> InterruptHeader:
    """Decode and judge the header: magic, header version and image type must be ones we know."""
    header = InterruptHeader.unpack(data)
    if header.magic != MAGIC:
        hint = " (header zeroed: the image was invalidated)" if not any(data[:HEADER_SIZE]) else ""
        raise FormatError(f"interrupt: bad magic 0x{header.magic:04x} at offset 0 "
                          f"(expected 0x{MAGIC:04x}){hint}")
    if header.hdr_version != HEADER_VERSION:
        raise FormatError(f"interrupt: unsupported header version {header.hdr_version} at offset 2 "
                          f"(expected {HEADER_VERSION})")
    if header.image_type not in tuple(ImageType):
        raise FormatError(f"interrupt: unknown image type {header.image_type} at offset 12 "
                          f"(1 loader, 2 app, 3 updater)")
    return header


def parse_interrupt_image(data: bytes) -> InterruptImage:
    """Header and data; the length must be exactly 32 + ``data_size`` (a slot dump is sliced by the
    caller, who knows the slot, using :func:`parse_interrupt_header`)."""
    header = parse_interrupt_header(data)
    available = len(data) - HEADER_SIZE
    if available < header.data_size:
        raise FormatError(f"interrupt: truncated image: header at offset 8 says {header.data_size} bytes "
                          f"follow, {available} do")
    if available > header.data_size:
        raise FormatError(f"interrupt: {available - header.data_size} unexpected bytes at offset "
                          f"{HEADER_SIZE + header.data_size} after the image")
    return InterruptImage(header, bytes(data[HEADER_SIZE:]))


def verify_interrupt_image(data: bytes, *, slot: int | None = None) -> InterruptVerification:
    """The bootloader's check (the CRC over everything after the header); with ``slot``, also that
    the vector table lies inside the image in that slot. A malformed image raises instead."""
    image = parse_interrupt_image(data)
    expected, actual = image.header.crc, zlib.crc32(image.data)
    if actual != expected:
        return InterruptVerification(False, expected, actual,
                                     f"crc32 mismatch: header says 0x{expected:08x}, "
                                     f"data gives 0x{actual:08x}")
    if slot is not None:
        vectors = image.header.vector_addr
        if not slot + HEADER_SIZE <= vectors < slot + HEADER_SIZE + image.header.data_size:
            return InterruptVerification(False, expected, actual,
                                         f"vector table 0x{vectors:08x} is outside the image in slot "
                                         f"0x{slot:08x}")
    return InterruptVerification(True, expected, actual)


def invalidate_interrupt_image(data: bytes) -> bytes:
    """The image with its header programmed to zeros, as the updater does before rewriting a slot."""
    if len(data) < HEADER_SIZE:
        raise FormatError(f"interrupt: truncated header: {len(data)} of {HEADER_SIZE} bytes")
    return bytes(HEADER_SIZE) + bytes(data[HEADER_SIZE:])


def looks_like(data: bytes) -> bool:
    """Cheap recognition for ``image info``: magic and header version."""
    if len(data) < HEADER_SIZE:
        return False
    header = InterruptHeader.unpack(data)
    return header.magic == MAGIC and header.hdr_version == HEADER_VERSION


def describe(data: bytes) -> dict[str, Any]:
    """JSON-able summary (the slot, and so the header region, is not in the header: ask with
    :func:`verify_interrupt_image`)."""
    image = parse_interrupt_image(data)
    header = image.header
    return {
        "format": FORMAT,
        "header_size": HEADER_SIZE,
        "magic": f"0x{header.magic:04x}",
        "hdr_version": header.hdr_version,
        "crc": f"0x{header.crc:08x}",
        "crc_ok": zlib.crc32(image.data) == header.crc,
        "data_size": header.data_size,
        "image_type": image.image_type.name.lower(),
        "version": str(header.version),
        "vector_addr": f"0x{header.vector_addr:08x}",
        "reserved": header.reserved,
        "git_sha": header.git_sha_text,
    }
