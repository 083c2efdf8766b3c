"""Seed 000 (Gizwits GoKit MCU OTA 3.1): the image is the application's raw .bin, nothing added.

What travels *beside* the bytes is what the system checks: the size and MD5 that the Wi-Fi module
announces (command 0x19: size, MD5 as 32 ASCII hex characters) and the MCU checks after the last
piece, the 8-character softVer the cloud gates on (it only pushes a version higher than the device
reports), and the 24-byte FLAG record the MCU writes for the bootloader. So this module builds and
checks that metadata, keeps it in a JSON sidecar next to the .bin (the cloud wants the bare .bin),
and encodes the FLAG record.

The APP partition is 26 KB (0x08003000-0x080097FF); the Wi-Fi module refuses anything larger, so a
larger application is a :class:`CapacityError` at build time rather than a refused update later.

softVer is 8 ASCII digits. Compared as strings they order like numbers, which is how "higher" can
be decided. mcuota maps softVer ``MMmmRRRR`` to :class:`ImageVersion` ``MM.mm.RRRR`` (``03030006`` is
3.3.6): fixed-width fields make the string order and the version order the same, so the server's
version gating means the same thing as the cloud's. The mapping is mcuota's convention, not
Gizwits'; a softVer is valid without it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image.version import ImageVersion

FORMAT = "gizwits"
APP_ADDRESS = 0x08003000
APP_SIZE = 26 * 1024
APP_BAK_ADDRESS = 0x08009800
FLAG_ADDRESS = 0x08002C00
SOFT_VER_LENGTH = 8
ROM_STATUS_PENDING = 0xEEEE
FLAG_SIZE = 24

# The FLAG struct as the C compiler lays it out: u16 rom_status, 2 bytes padding, u32 rom_size,
# u8[16] md5. Padding is written as 0xFF, which leaves those bytes erased (no programming needed);
# decoding ignores them.
_FLAG = struct.Struct("<H2sI16s")
_FLAG_PADDING = b"\xff\xff"

_SOFT_VER = re.compile(r"^[0-9]{8}$")
_HARD_VER = re.compile(r"^[\x20-\x7e]{8}$")


def check_soft_ver(text: str) -> str:
    """A softVer as the device info and the cloud carry it: exactly 8 ASCII digits."""
    if not _SOFT_VER.match(text):
        raise UsageError(f"gizwits softVer {text!r} must be exactly {SOFT_VER_LENGTH} ASCII digits "
                         f"(e.g. 03030006)")
    return text


def check_hard_ver(text: str) -> str:
    """hardVer is 8 printable ASCII characters in the device info; it is informational here."""
    if not _HARD_VER.match(text):
        raise UsageError(f"gizwits hardVer {text!r} must be exactly 8 printable ASCII characters")
    return text


def soft_ver_from_version(version: ImageVersion) -> str:
    """``3.3.6`` → ``03030006`` (major and minor 0-99, revision 0-9999, no build number)."""
    if version.major > 99 or version.minor > 99 or version.revision > 9999:
        raise UsageError(f"version {version} does not fit a gizwits softVer MMmmRRRR "
                         f"(major and minor 0..99, revision 0..9999)")
    if version.build:
        raise UsageError(f"version {version}: a gizwits softVer has no room for a build number")
    return f"{version.major:02d}{version.minor:02d}{version.revision:04d}"


def version_from_soft_ver(soft_ver: str) -> ImageVersion:
    """``03030006`` → ``3.3.6``, the inverse of :func:`soft_ver_from_version`."""
    text = check_soft_ver(soft_ver)
    return ImageVersion(int(text[0:2]), int(text[2:4]), int(text[4:8]))


@dataclass(frozen=True)
class GizwitsMetadata:
    """What the Wi-Fi module announces and the MCU checks for one .bin."""

    size: int
    md5: bytes
    soft_ver: str
    hard_ver: str | None = None

    def __post_init__(self) -> None:
        if len(self.md5) != 16:
            raise FormatError(f"gizwits: an MD5 is 16 bytes, not {len(self.md5)}")
        check_soft_ver(self.soft_ver)
        if self.hard_ver is not None:
            check_hard_ver(self.hard_ver)
        if not 0 < self.size <= 0xFFFFFFFF:
            raise FormatError(f"gizwits: size {self.size} is not a valid image size")

    @property
    def md5_hex(self) -> str:
        """The MD5 as the serial protocol carries it (32 ASCII hex characters)."""
        return self.md5.hex()

    @property
    def version(self) -> ImageVersion:
        return version_from_soft_ver(self.soft_ver)


@dataclass(frozen=True)
class GizwitsVerification:
    ok: bool
    reason: str = ""


def build_gizwits_metadata(payload: bytes, soft_ver: str, hard_ver: str | None = None, *,
                           max_size: int = APP_SIZE) -> GizwitsMetadata:
    """Metadata for ``payload``, refusing what the APP partition (or ``max_size``) cannot hold."""
    check_soft_ver(soft_ver)
    if not payload:
        raise FormatError("gizwits: the application is empty")
    if len(payload) > max_size:
        raise CapacityError(f"gizwits: application is {len(payload)} bytes, over the {max_size}-byte "
                            f"APP partition")
    return GizwitsMetadata(len(payload), hashlib.md5(payload, usedforsecurity=False).digest(),
                           soft_ver, hard_ver)


def verify_gizwits_image(payload: bytes, metadata: GizwitsMetadata) -> GizwitsVerification:
    """The MCU's check after the last piece: the size and the MD5 of what arrived."""
    if len(payload) != metadata.size:
        return GizwitsVerification(False, f"size mismatch: metadata says {metadata.size} bytes, "
                                          f"image has {len(payload)}")
    actual = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    if actual != metadata.md5_hex:
        return GizwitsVerification(False, f"md5 mismatch: metadata says {metadata.md5_hex}, "
                                          f"image gives {actual}")
    return GizwitsVerification(True)


def sidecar_json(metadata: GizwitsMetadata) -> str:
    """The sidecar that travels next to the .bin (written as ``<bin>.json``)."""
    obj: dict[str, Any] = {
        "format": FORMAT,
        "size": metadata.size,
        "md5": metadata.md5_hex,
        "soft_ver": metadata.soft_ver,
    }
    if metadata.hard_ver is not None:
        obj["hard_ver"] = metadata.hard_ver
    return json.dumps(obj, indent=2) + "\n"


def parse_sidecar(data: bytes | str) -> GizwitsMetadata:
    """Read a sidecar back, naming the field that is missing or wrong."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise FormatError(f"gizwits sidecar: not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FormatError(f'gizwits sidecar: not a gizwits sidecar (no "format": "{FORMAT}")')
    size, md5, soft_ver, hard_ver = (obj.get(k) for k in ("size", "md5", "soft_ver", "hard_ver"))
    if not isinstance(size, int) or isinstance(size, bool):
        raise FormatError('gizwits sidecar: "size" must be an integer')
    if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise FormatError('gizwits sidecar: "md5" must be 32 hex characters')
    if not isinstance(soft_ver, str):
        raise FormatError('gizwits sidecar: "soft_ver" must be a string')
    if hard_ver is not None and not isinstance(hard_ver, str):
        raise FormatError('gizwits sidecar: "hard_ver" must be a string')
    try:
        return GizwitsMetadata(size, bytes.fromhex(md5), soft_ver, hard_ver)
    except UsageError as exc:
        raise FormatError(f"gizwits sidecar: {exc}") from None


def looks_like(data: bytes) -> bool:
    """The .bin itself carries no mark, so what ``image info`` can recognise is the sidecar."""
    if data.lstrip()[:1] != b"{":
        return False
    try:
        parse_sidecar(data)
    except FormatError:
        return False
    return True


def describe(data: bytes) -> dict[str, Any]:
    """JSON-able summary of a sidecar, with the softVer also as an :class:`ImageVersion`."""
    metadata = parse_sidecar(data)
    return {
        "format": FORMAT,
        "size": metadata.size,
        "md5": metadata.md5_hex,
        "soft_ver": metadata.soft_ver,
        "version": str(metadata.version),
        "hard_ver": metadata.hard_ver,
        "fits_app_partition": metadata.size <= APP_SIZE,
    }


@dataclass(frozen=True)
class GizwitsFlag:
    """The FLAG record: the bootloader copies APP_BAK to APP while ``rom_status`` is 0xEEEE."""

    rom_status: int
    rom_size: int
    md5: bytes

    @property
    def pending(self) -> bool:
        return self.rom_status == ROM_STATUS_PENDING


def flag_for(metadata: GizwitsMetadata) -> GizwitsFlag:
    """The record the MCU writes after the last piece checked out: update pending."""
    return GizwitsFlag(ROM_STATUS_PENDING, metadata.size, metadata.md5)


def encode_flag(flag: GizwitsFlag) -> bytes:
    if not 0 <= flag.rom_status <= 0xFFFF:
        raise UsageError(f"gizwits FLAG: rom_status {flag.rom_status} is not a u16")
    if not 0 <= flag.rom_size <= 0xFFFFFFFF:
        raise UsageError(f"gizwits FLAG: rom_size {flag.rom_size} is not a u32")
    if len(flag.md5) != 16:
        raise UsageError(f"gizwits FLAG: an MD5 is 16 bytes, not {len(flag.md5)}")
    return _FLAG.pack(flag.rom_status, _FLAG_PADDING, flag.rom_size, flag.md5)


def decode_flag(data: bytes) -> GizwitsFlag:
    """Decode the record as read from flash (an erased page decodes to a not-pending record)."""
    if len(data) < FLAG_SIZE:
        raise FormatError(f"gizwits FLAG: truncated: {len(data)} of {FLAG_SIZE} bytes")
    rom_status, _padding, rom_size, md5 = _FLAG.unpack_from(data)
    return GizwitsFlag(rom_status, rom_size, md5)
