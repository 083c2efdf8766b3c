"""Reading a signed MCUboot image back: header, protected and unprotected TLVs, and a JSON-able view.

Parsing is strict in the way MCUboot is (see :mod:`.tlv`) and every failure is a :class:`FormatError`
naming the offset, because the same parser sits under ``image info``, the server's upload check and the
bootloader model; :func:`~mcuota.image.mcuboot.verify.verify_image` turns those errors into a
``malformed`` result instead of raising.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from mcuota.errors import FormatError
from mcuota.image.mcuboot.header import ImageHeader, flag_names
from mcuota.image.mcuboot.tlv import (
    TLV_INFO_SIZE,
    TLV_PROT_INFO_MAGIC,
    Dependency,
    Tlv,
    TlvType,
    decode_security_counter,
    parse_tlv_block,
)
from mcuota.image.version import ImageVersion


class McubootImage(NamedTuple):
    """A parsed image; offsets are from the start of the data handed to :func:`parse_image`."""

    header: ImageHeader
    protected: tuple[Tlv, ...]
    unprotected: tuple[Tlv, ...]
    end: int
    """Offset just past the unprotected TLV block; anything after it is padding and trailer."""

    @property
    def version(self) -> ImageVersion:
        return self.header.version

    @property
    def tlvs(self) -> tuple[Tlv, ...]:
        return self.protected + self.unprotected

    def find(self, code: int) -> list[Tlv]:
        return [tlv for tlv in self.tlvs if tlv.type == code]

    @property
    def security_counter(self) -> int | None:
        found = [tlv for tlv in self.protected if tlv.type == TlvType.SEC_CNT]
        return decode_security_counter(found[0].value, found[0].offset) if found else None

    @property
    def dependencies(self) -> list[Dependency]:
        return [Dependency.decode(tlv.value, tlv.offset) for tlv in self.protected
                if tlv.type == TlvType.DEPENDENCY]

    def payload(self, data: bytes) -> bytes:
        """The application bytes (what runs from ``hdr_size`` on)."""
        return bytes(data[self.header.hdr_size : self.header.tlv_offset])

    def to_dict(self, data: bytes | None = None) -> dict[str, Any]:
        """JSON-able view; given the image ``data`` it also says whether the SHA256 TLV matches."""
        h = self.header
        hash_ok = None
        if data is not None:
            stored = [tlv.value for tlv in self.unprotected if tlv.type == TlvType.SHA256]
            hash_ok = bool(stored) and hashlib.sha256(memoryview(data)[: h.hashed_size]).digest() == stored[0]
        return {
            "format": "mcuboot",
            "version": str(h.version),
            "load_address": f"0x{h.load_addr:08x}",
            "header_size": h.hdr_size,
            "payload_size": h.img_size,
            "hash_ok": hash_ok,
            "header": {
                "magic": f"0x{h.magic:08x}",
                "load_addr": f"0x{h.load_addr:08x}",
                "hdr_size": h.hdr_size,
                "protect_tlv_size": h.protect_tlv_size,
                "img_size": h.img_size,
                "flags": flag_names(h.flags),
                "version": str(h.version),
            },
            "security_counter": self.security_counter,
            "dependencies": [{"image_id": d.image_id, "version": str(d.version)} for d in self.dependencies],
            "tlvs": [{"type": tlv.name, "code": tlv.type, "protected": tlv.protected, "offset": tlv.offset,
                      "length": len(tlv.value), "value": tlv.value.hex()} for tlv in self.tlvs],
            "hashed_size": h.hashed_size,
            "image_end": self.end,
        }


def parse_image(data: bytes) -> McubootImage:
    """Parse header and TLV area; raises :class:`FormatError` (truncated, bad magic, TLV overruns, …)."""
    header = ImageHeader.unpack(data)
    tlv_offset = header.tlv_offset
    if tlv_offset > len(data):
        raise FormatError(f"truncated: header says the payload ends at 0x{tlv_offset:x}, the data has only "
                          f"{len(data)} bytes")
    protected: list[Tlv] = []
    offset = tlv_offset
    if header.protect_tlv_size:
        if header.protect_tlv_size < TLV_INFO_SIZE:
            raise FormatError(f"header's protected TLV size {header.protect_tlv_size} is smaller than a "
                              "TLV info header")
        protected, offset = parse_tlv_block(data, offset, protected=True,
                                            expected_size=header.protect_tlv_size)
    elif int.from_bytes(data[offset : offset + 2], "little") == TLV_PROT_INFO_MAGIC:
        raise FormatError(f"protected TLV block at offset 0x{offset:x} but the header's "
                          "protect_tlv_size is 0")
    unprotected, end = parse_tlv_block(data, offset, protected=False)
    image = McubootImage(header, tuple(protected), tuple(unprotected), end)
    # Decode the typed protected values now, so a bad length is reported as malformed here.
    _ = image.security_counter, image.dependencies
    return image


def describe_image(data: bytes) -> dict[str, Any]:
    """JSON-able description for ``image info``; raises FormatError like :func:`parse_image`."""
    return parse_image(data).to_dict(data)
