"""Finding an image in a slot and deciding whether the bootloader may use it.

Locating reads only the 32-byte header and the 4-byte TLV info (what bootutil does before it hashes),
so a boot with nothing to do costs two small reads per slot. Validation is
:func:`~mcuota.image.mcuboot.verify_image` on the bytes in flash; its result is memoised by a SHA-256
of exactly those bytes, so the same image is parsed and its signature checked once per strategy
instance however many times a sweep boots it, and a single changed byte is a different key.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

from mcuota.errors import FormatError
from mcuota.flash import NorFlash
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import ImageFlag, ImageHeader, VerifyResult, verify_image
from mcuota.image.mcuboot.tlv import TLV_INFO_MAGIC, TLV_INFO_SIZE, TLV_PROT_INFO_MAGIC

_INFO = struct.Struct("<HH")
_CACHE_LIMIT = 64


class SlotImage(NamedTuple):
    """An image header found at ``address``; ``size`` runs to the end of its TLV area."""

    address: int
    header: ImageHeader
    size: int


def locate_image(flash: NorFlash, address: int, room: int) -> SlotImage | str:
    """The image at ``address`` whose TLVs end within ``room`` bytes, or why there is none."""
    if room < 32:
        return "no room for an image header"
    try:
        header = ImageHeader.unpack(flash.read(address, 32))
    except FormatError as exc:
        return f"no image header: {exc}"
    tlv = header.hdr_size + header.img_size
    info = tlv + header.protect_tlv_size
    if info + TLV_INFO_SIZE > room:
        return (f"image of {info + TLV_INFO_SIZE} bytes or more does not fit the {room} bytes before the "
                "trailer")
    if header.protect_tlv_size:
        magic, _ = _INFO.unpack(flash.read(address + tlv, TLV_INFO_SIZE))
        if magic != TLV_PROT_INFO_MAGIC:
            return f"no protected TLV block at offset 0x{tlv:x} (header says {header.protect_tlv_size} bytes)"
    magic, total = _INFO.unpack(flash.read(address + info, TLV_INFO_SIZE))
    if magic != TLV_INFO_MAGIC:
        return f"no TLV area at offset 0x{info:x} (read magic 0x{magic:04x})"
    size = info + total
    if size > room:
        return f"image of {size} bytes does not fit the {room} bytes before the trailer"
    return SlotImage(address, header, size)


class Validator:
    """Hash and signature checks with trusted ``keys`` (none: hash only), memoised by content."""

    def __init__(self, keys: Sequence[PublicKey]) -> None:
        self.keys = tuple(keys)
        self._cache: dict[bytes, VerifyResult] = {}

    def verify(self, flash: NorFlash, image: SlotImage) -> VerifyResult:
        data = flash.read(image.address, image.size)
        key = hashlib.sha256(data).digest()
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[key] = verify_image(data, self.keys)
        return found


def bootable_problem(image: SlotImage) -> str | None:
    if image.header.flags & ImageFlag.NON_BOOTABLE:
        return "image is marked non-bootable"
    return None


def vector_problem(flash: NorFlash, image: SlotImage, low: int, high: int) -> str | None:
    """bootutil's MCUBOOT_VERIFY_IMG_ADDRESS: the reset handler must point into the primary slot."""
    if image.header.img_size < 8:
        return "image too small for a vector table"
    reset = struct.unpack("<I", flash.read(image.address + image.header.hdr_size + 4, 4))[0] & ~1
    if not low <= reset < high:
        return (f"reset handler 0x{reset:08x} is outside the primary slot 0x{low:08x}..0x{high:08x}: "
                "the image is linked for another address")
    return None


def downgrade_problem(mode: str, new: VerifyResult, installed: VerifyResult | None) -> str | None:
    """Why ``new`` may not replace ``installed`` under downgrade prevention ``mode``, if it may not.

    Nothing is protected when the installed image is not valid (an update that was cut while it was
    being copied must be able to finish), as bootutil allows when the primary header is erased."""
    if mode == "off" or installed is None or not installed.ok:
        return None
    if mode == "security-counter":
        have = None if installed.image is None else installed.image.security_counter
        if have is None:
            return None
        got = None if new.image is None else new.image.security_counter
        if got is None or got < have:
            return (f"security counter {got if got is not None else 'missing'} is lower than the installed "
                    f"image's {have}: downgrade refused")
        return None
    if new.version is not None and installed.version is not None and new.version < installed.version:
        return f"version {new.version} is lower than the installed {installed.version}: downgrade refused"
    return None
