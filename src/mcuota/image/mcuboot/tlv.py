"""The TLV area after the payload: an optional protected block (covered by the hash and signature) and
the unprotected block that carries the hash, the key reference and the signature.

Each block is ``{u16 magic, u16 total length including these 4 bytes}`` followed by ``{u16 type, u16
length, value}`` records. The parser follows MCUboot's own rules rather than imgtool's lenient reader,
because mcuota's bootloader model must reject what a real bootloader rejects: a record that runs past
its block, a protected block whose length disagrees with the header, or a type that only means
something when signed (SEC_CNT, DEPENDENCY, …) sitting in the unprotected block, where anyone could
have changed it without breaking the signature.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import NamedTuple

from mcuota.errors import FormatError
from mcuota.image.version import ImageVersion

TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_INFO_SIZE = 4
TLV_HEADER_SIZE = 4
_INFO = struct.Struct("<HH")
_RECORD = struct.Struct("<HH")


class TlvType(IntEnum):
    """TLV type codes (bootutil/image.h)."""

    KEYHASH = 0x01
    PUBKEY = 0x02
    SHA256 = 0x10
    SHA384 = 0x11
    SHA512 = 0x12
    RSA2048_PSS = 0x20
    ECDSA224 = 0x21
    ECDSA_SIG = 0x22
    RSA3072_PSS = 0x23
    ED25519 = 0x24
    SIG_PURE = 0x25
    ENC_RSA2048 = 0x30
    ENC_KW = 0x31
    ENC_EC256 = 0x32
    ENC_X25519 = 0x33
    ENC_X25519_SHA512 = 0x34
    DEPENDENCY = 0x40
    SEC_CNT = 0x50
    BOOT_RECORD = 0x60
    DECOMP_SIZE = 0x70
    DECOMP_SHA = 0x71
    DECOMP_SIGNATURE = 0x72
    COMP_DEC_SIZE = 0x73
    UUID_VID = 0x74
    UUID_CID = 0x75


#: What MCUboot tolerates outside the protected block: things the signature itself vouches for or that
#: only make sense after signing. Anything else there is a malformed (possibly tampered) image.
ALLOWED_UNPROTECTED = frozenset({
    TlvType.KEYHASH, TlvType.PUBKEY, TlvType.SHA256, TlvType.SHA384, TlvType.SHA512,
    TlvType.RSA2048_PSS, TlvType.ECDSA224, TlvType.ECDSA_SIG, TlvType.RSA3072_PSS, TlvType.ED25519,
    TlvType.SIG_PURE, TlvType.ENC_RSA2048, TlvType.ENC_KW, TlvType.ENC_EC256, TlvType.ENC_X25519,
    TlvType.ENC_X25519_SHA512,
})

SIGNATURE_TYPES = frozenset({TlvType.RSA2048_PSS, TlvType.ECDSA_SIG, TlvType.RSA3072_PSS, TlvType.ED25519})
HASH_TYPES = {TlvType.SHA256: "sha256", TlvType.SHA384: "sha384", TlvType.SHA512: "sha512"}

#: The signature TLV each key type produces (keys.KEY_TYPES names).
SIGNATURE_TLV_FOR_KEY: dict[str, TlvType] = {
    "ed25519": TlvType.ED25519, "ecdsa-p256": TlvType.ECDSA_SIG,
    "rsa-2048": TlvType.RSA2048_PSS, "rsa-3072": TlvType.RSA3072_PSS,
}


def type_name(code: int) -> str:
    try:
        return TlvType(code).name
    except ValueError:
        return f"0x{code:04x}"


class Tlv(NamedTuple):
    """One record as found in an image; ``offset`` is where its 4-byte record header starts."""

    type: int
    value: bytes
    protected: bool
    offset: int = 0

    @property
    def name(self) -> str:
        return type_name(self.type)


def encode_tlv_block(records: Iterable[tuple[int, bytes]], *, protected: bool) -> bytes:
    """A block with its info header; an empty protected block is no bytes at all (ih_protect_tlv_size 0)."""
    body = bytearray()
    for code, value in records:
        if not 0 <= code <= 0xFFFF:
            raise ValueError(f"TLV type {code:#x} does not fit 16 bits")
        if len(value) > 0xFFFF:
            raise FormatError(f"TLV {type_name(code)} value of {len(value)} bytes does not fit 16 bits")
        body += _RECORD.pack(code, len(value)) + value
    if not body and protected:
        return b""
    total = TLV_INFO_SIZE + len(body)
    if total > 0xFFFF:
        raise FormatError(f"TLV block of {total} bytes does not fit its 16-bit length")
    return _INFO.pack(TLV_PROT_INFO_MAGIC if protected else TLV_INFO_MAGIC, total) + bytes(body)


def protected_block_size(records: Sequence[tuple[int, bytes]]) -> int:
    """``ih_protect_tlv_size`` for these records: known before signing, since the header is hashed."""
    if not records:
        return 0
    return TLV_INFO_SIZE + sum(TLV_HEADER_SIZE + len(value) for _, value in records)


def parse_tlv_block(data: bytes, offset: int, *, protected: bool, expected_size: int | None = None
                    ) -> tuple[list[Tlv], int]:
    """Records of the block at ``offset`` and the offset just past it; any overrun is a FormatError."""
    which = "protected" if protected else "unprotected"
    magic_wanted = TLV_PROT_INFO_MAGIC if protected else TLV_INFO_MAGIC
    if offset + TLV_INFO_SIZE > len(data):
        raise FormatError(f"truncated: the {which} TLV info header at offset 0x{offset:x} runs past the end "
                          f"of the data ({len(data)} bytes)")
    magic, total = _INFO.unpack_from(data, offset)
    if magic != magic_wanted:
        raise FormatError(f"bad {which} TLV magic 0x{magic:04x} at offset 0x{offset:x} "
                          f"(expected 0x{magic_wanted:04x})")
    if expected_size is not None and total != expected_size:
        raise FormatError(f"protected TLV block at offset 0x{offset:x} says {total} bytes, the header "
                          f"says {expected_size}")
    if total < TLV_INFO_SIZE:
        raise FormatError(f"{which} TLV block at offset 0x{offset:x} has impossible length {total}")
    end = offset + total
    if end > len(data):
        raise FormatError(f"truncated: the {which} TLV block at offset 0x{offset:x} needs {total} bytes, "
                          f"only {len(data) - offset} remain")
    records: list[Tlv] = []
    pos = offset + TLV_INFO_SIZE
    while pos < end:
        if pos + TLV_HEADER_SIZE > end:
            raise FormatError(f"TLV record header at offset 0x{pos:x} overruns the {which} block "
                              f"(ends at 0x{end:x})")
        code, length = _RECORD.unpack_from(data, pos)
        if pos + TLV_HEADER_SIZE + length > end:
            raise FormatError(f"TLV {type_name(code)} at offset 0x{pos:x} ({length} bytes) overruns the "
                              f"{which} block (ends at 0x{end:x})")
        if not protected and code not in ALLOWED_UNPROTECTED:
            raise FormatError(f"unprotected {type_name(code)} TLV at offset 0x{pos:x}: it must be in the "
                              "protected (signed) block")
        value = bytes(data[pos + TLV_HEADER_SIZE : pos + TLV_HEADER_SIZE + length])
        records.append(Tlv(code, value, protected, pos))
        pos += TLV_HEADER_SIZE + length
    return records, end


# --- typed values -----------------------------------------------------------------------------------

_SEC_CNT = struct.Struct("<I")
_DEPENDENCY = struct.Struct("<B3xBBHI")


def encode_security_counter(value: int) -> bytes:
    return _SEC_CNT.pack(value)


def decode_security_counter(value: bytes, offset: int = 0) -> int:
    if len(value) != _SEC_CNT.size:
        raise FormatError(f"SEC_CNT TLV at offset 0x{offset:x} has {len(value)} bytes, expected 4")
    return int(_SEC_CNT.unpack(value)[0])


class Dependency(NamedTuple):
    """"This image needs image ``image_id`` at ``version`` or newer" (a DEPENDENCY TLV)."""

    image_id: int
    version: ImageVersion

    def encode(self) -> bytes:
        v = self.version
        return _DEPENDENCY.pack(self.image_id, v.major, v.minor, v.revision, v.build)

    @classmethod
    def decode(cls, value: bytes, offset: int = 0) -> Dependency:
        if len(value) != _DEPENDENCY.size:
            raise FormatError(f"DEPENDENCY TLV at offset 0x{offset:x} has {len(value)} bytes, expected "
                              f"{_DEPENDENCY.size}")
        image_id, major, minor, revision, build = _DEPENDENCY.unpack(value)
        return cls(image_id, ImageVersion(major, minor, revision, build))

    def __str__(self) -> str:
        return f"({self.image_id},{self.version})"
