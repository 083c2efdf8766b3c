"""The 32-byte MCUboot image header, described once.

``_FIELDS`` is the single description of the layout (name, struct code), in ``struct image_header``
order; :meth:`ImageHeader.pack` and :meth:`ImageHeader.unpack` are both derived from it, so the writer
and the reader cannot drift apart. Little-endian only: big-endian MCUboot targets exist but nothing in
mcuota builds for them.

Records in this package are NamedTuples rather than frozen dataclasses: each frozen dataclass costs
about half a millisecond to create at import, and ``mcuota image sign`` has a start-up budget.
"""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import NamedTuple

from mcuota.errors import FormatError, UsageError
from mcuota.image.version import ImageVersion

IMAGE_MAGIC = 0x96F3B83D
HEADER_STRUCT_SIZE = 32


class ImageFlag(IntFlag):
    """``ih_flags`` bits (bootutil/image.h)."""

    PIC = 0x1
    ENCRYPTED_AES128 = 0x4
    ENCRYPTED_AES256 = 0x8
    NON_BOOTABLE = 0x10
    RAM_LOAD = 0x20
    ROM_FIXED = 0x100
    COMPRESSED_LZMA1 = 0x200
    COMPRESSED_LZMA2 = 0x400
    COMPRESSED_ARM_THUMB = 0x800


_FIELDS: tuple[tuple[str, str], ...] = (
    ("magic", "I"),
    ("load_addr", "I"),
    ("hdr_size", "H"),
    ("protect_tlv_size", "H"),
    ("img_size", "I"),
    ("flags", "I"),
    ("major", "B"),
    ("minor", "B"),
    ("revision", "H"),
    ("build", "I"),
    ("pad", "I"),
)
_STRUCT = struct.Struct("<" + "".join(code for _, code in _FIELDS))
assert _STRUCT.size == HEADER_STRUCT_SIZE


class ImageHeader(NamedTuple):
    """The decoded header; ``hdr_size`` is where the payload starts (e.g. 0x200), not 32."""

    load_addr: int
    hdr_size: int
    protect_tlv_size: int
    img_size: int
    flags: ImageFlag
    version: ImageVersion
    magic: int = IMAGE_MAGIC
    pad: int = 0

    @property
    def tlv_offset(self) -> int:
        """Where the TLV area (protected block first, if any) starts: right after the payload."""
        return self.hdr_size + self.img_size

    @property
    def hashed_size(self) -> int:
        """Length of the region the SHA256 TLV and the signature cover: header, payload, protected TLVs."""
        return self.hdr_size + self.img_size + self.protect_tlv_size

    def pack(self) -> bytes:
        values = {
            "magic": self.magic, "load_addr": self.load_addr, "hdr_size": self.hdr_size,
            "protect_tlv_size": self.protect_tlv_size, "img_size": self.img_size, "flags": int(self.flags),
            "major": self.version.major, "minor": self.version.minor, "revision": self.version.revision,
            "build": self.version.build, "pad": self.pad,
        }
        try:
            return _STRUCT.pack(*(values[name] for name, _ in _FIELDS))
        except struct.error:
            too_big = [f"{name}={values[name]:#x}" for name, code in _FIELDS
                       if not 0 <= values[name] < 1 << (8 * struct.calcsize(code))]
            raise UsageError(f"MCUboot header field out of range: {', '.join(too_big)}") from None

    @classmethod
    def unpack(cls, data: bytes) -> ImageHeader:
        """Decode the first 32 bytes; wrong magic or a header smaller than itself is a FormatError."""
        if len(data) < HEADER_STRUCT_SIZE:
            raise FormatError(f"truncated: {len(data)} bytes, an MCUboot header needs {HEADER_STRUCT_SIZE}")
        raw = dict(zip((name for name, _ in _FIELDS), _STRUCT.unpack_from(data), strict=True))
        if raw["magic"] != IMAGE_MAGIC:
            raise FormatError(f"bad magic 0x{raw['magic']:08x} at offset 0 (an MCUboot image starts with "
                              f"0x{IMAGE_MAGIC:08x})")
        if raw["hdr_size"] < HEADER_STRUCT_SIZE:
            raise FormatError(f"header size {raw['hdr_size']} at offset 8 is smaller than the "
                              f"{HEADER_STRUCT_SIZE}-byte header itself")
        return cls(
            load_addr=raw["load_addr"], hdr_size=raw["hdr_size"], protect_tlv_size=raw["protect_tlv_size"],
            img_size=raw["img_size"], flags=ImageFlag(raw["flags"]),
            version=ImageVersion(raw["major"], raw["minor"], raw["revision"], raw["build"]),
            magic=raw["magic"], pad=raw["pad"],
        )


def looks_like_mcuboot(data: bytes) -> bool:
    """Cheap detection for ``image info`` and friends: the magic and a plausible header size."""
    if len(data) < HEADER_STRUCT_SIZE:
        return False
    magic, _, hdr_size = struct.unpack_from("<IIH", data)
    return bool(magic == IMAGE_MAGIC and hdr_size >= HEADER_STRUCT_SIZE)


def flag_names(flags: int) -> list[str]:
    """Names of the set bits, unknown ones as hex, for humans and JSON."""
    names = [flag.name for flag in ImageFlag if flags & flag and flag.name]
    unknown = flags & ~sum(ImageFlag)
    return [*names, f"0x{unknown:x}"] if unknown else names
