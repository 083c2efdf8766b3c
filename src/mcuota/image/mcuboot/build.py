"""Building and signing an MCUboot image, byte-compatible with ``imgtool sign`` 2.5.

Layout produced (the order matters: it is what imgtool writes and what the byte-identity tests pin)::

    header (32 bytes) | header room up to hdr_size | payload | protected TLVs | unprotected TLVs | [trailer]

protected: SEC_CNT, DEPENDENCY..., custom TLVs (all covered by the hash and the signature);
unprotected: SHA256, then KEYHASH (or PUBKEY with public_key_format="full"), then the signature.

Two imgtool rules are kept on purpose even where they surprise: ``pad_header`` fills the inserted header
room with the *erased* value (0xff by default), and a load address other than 0 sets the RAM_LOAD flag
(imgtool's --load-addr is the RAM address the bootloader copies the image to). Without ``pad_header``
the input must already start with ``header_size`` bytes of room; imgtool insists on zeros, we also
accept erased bytes, since both are what a linker leaves in a reserved header area.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from mcuota.errors import CapacityError, UsageError
from mcuota.image.mcuboot.header import HEADER_STRUCT_SIZE, ImageFlag, ImageHeader
from mcuota.image.mcuboot.tlv import (
    SIGNATURE_TLV_FOR_KEY,
    Dependency,
    TlvType,
    encode_security_counter,
    encode_tlv_block,
    protected_block_size,
)
from mcuota.image.mcuboot.trailer import FLAG_SET, TrailerLayout
from mcuota.image.version import ImageVersion

if TYPE_CHECKING:
    from mcuota.image.keys import PrivateKey

PublicKeyFormat = Literal["hash", "full"]
#: imgtool only allows custom TLV types in the vendor range, so they never collide with MCUboot's own.
VENDOR_TLV_RANGE = range(0x00A0, 0xFFFF)
MAX_HEADER_SIZE = 0xFFFF


class BuiltImage(NamedTuple):
    """A built image and the facts a caller reports or needs for HEX output."""

    data: bytes
    """The image; with ``pad`` it is exactly ``slot_size`` bytes and ends with the trailer."""
    image_size: int
    """Bytes up to the end of the TLV area (the unpadded image)."""
    header: ImageHeader
    digest: bytes
    """SHA-256 over header, payload and protected TLVs: the SHA256 TLV."""
    signature: bytes | None
    layout: TrailerLayout
    padded: bool
    confirmed: bool

    def trailer_writes(self) -> list[tuple[int, bytes]]:
        """(slot offset, bytes) of the non-erased trailer bytes ``pad`` puts in, over erased padding: the
        magic (a test swap) and, with ``confirm``, image_ok. A HEX output carries just these instead of a
        slot full of erased bytes, as imgtool's does. imgtool leaves image_ok alone in overwrite-only
        mode, so we do too."""
        if not self.padded:
            return []
        layout = self.layout
        writes = []
        if self.confirmed and not layout.overwrite_only:
            flag = bytes([FLAG_SET]) + bytes([layout.erased_val]) * (layout.field_align - 1)
            writes.append((layout.image_ok_offset, flag))
        writes.append((layout.magic_offset, layout.magic))
        return writes


def security_counter_for(version: ImageVersion) -> int:
    """imgtool's ``--security-counter auto``: major << 24 | minor << 16 | revision."""
    return (version.major << 24) + (version.minor << 16) + version.revision


def build_image(
    payload: bytes,
    *,
    version: ImageVersion,
    header_size: int,
    key: PrivateKey | None = None,
    slot_size: int = 0,
    pad_header: bool = False,
    pad: bool = False,
    confirm: bool = False,
    align: int = 1,
    max_align: int | None = None,
    erased_val: int = 0xFF,
    max_sectors: int = 128,
    overwrite_only: bool = False,
    security_counter: int | Literal["auto"] | None = None,
    dependencies: Sequence[Dependency] = (),
    custom_tlvs: Sequence[tuple[int, bytes]] = (),
    load_address: int = 0,
    rom_fixed: int | None = None,
    non_bootable: bool = False,
    public_key_format: PublicKeyFormat = "hash",
) -> BuiltImage:
    """Wrap ``payload`` in a header and TLVs, sign it with ``key`` (hash only without one) and, with
    ``pad``/``confirm``, pad it to ``slot_size`` with a trailer requesting a test/permanent swap.

    ``slot_size`` (0: unchecked unless padding) is checked like imgtool: image + trailer must fit, else
    :class:`CapacityError` naming both sizes. Bad options are :class:`UsageError`.
    """
    pad = pad or confirm
    layout = TrailerLayout(slot_size, align, erased_val=erased_val, max_sectors=max_sectors,
                           overwrite_only=overwrite_only, max_align=max_align)
    if not HEADER_STRUCT_SIZE <= header_size <= MAX_HEADER_SIZE:
        raise UsageError(f"header size {header_size:#x} must be between {HEADER_STRUCT_SIZE:#x} and "
                         f"{MAX_HEADER_SIZE:#x}")
    if pad and slot_size <= 0:
        raise UsageError("padding to the slot (--pad / --confirm) needs a slot size")
    if load_address and rom_fixed:
        raise UsageError("a RAM load address and a fixed ROM address cannot both be set")
    if public_key_format not in ("hash", "full"):
        raise UsageError(f"public key format {public_key_format!r} is not 'hash' or 'full'")
    header_addr = rom_fixed or load_address
    if not 0 <= header_addr <= 0xFFFFFFFF:
        raise UsageError(f"load address {header_addr:#x} does not fit 32 bits")

    if pad_header:
        fill = bytes([erased_val]) * (header_size - HEADER_STRUCT_SIZE)
        body = payload
    else:
        if len(payload) < header_size:
            raise UsageError(f"input is {len(payload)} bytes, smaller than the {header_size:#x}-byte header "
                             "it must start with; use --pad-header to insert the header")
        room = payload[:header_size]
        if room.count(0) != header_size and room.count(erased_val) != header_size:
            raise UsageError(f"the first {header_size:#x} bytes of the input are not empty (zero or erased): "
                             "use --pad-header to insert room for the header")
        fill = payload[HEADER_STRUCT_SIZE:header_size]
        body = payload[header_size:]
    if len(body) > 0xFFFFFFFF:
        raise CapacityError(f"payload of {len(body)} bytes does not fit the header's 32-bit size")

    protected = _protected_records(version, security_counter, dependencies, custom_tlvs)
    flags = ImageFlag(0)
    if load_address:
        flags |= ImageFlag.RAM_LOAD
    if rom_fixed:
        flags |= ImageFlag.ROM_FIXED
    if non_bootable:
        flags |= ImageFlag.NON_BOOTABLE
    header = ImageHeader(load_addr=header_addr, hdr_size=header_size,
                         protect_tlv_size=protected_block_size(protected), img_size=len(body),
                         flags=flags, version=version)
    prot_block = encode_tlv_block(protected, protected=True)
    assert len(prot_block) == header.protect_tlv_size

    out = bytearray(header.pack())
    out += fill
    out += body
    out += prot_block
    digest = hashlib.sha256(out).digest()

    unprotected: list[tuple[int, bytes]] = [(TlvType.SHA256, digest)]
    signature = None
    if key is not None:
        public = key.public()
        unprotected.append((TlvType.KEYHASH, public.key_hash) if public_key_format == "hash"
                           else (TlvType.PUBKEY, public.mcuboot_der))
        signature = key.sign_digest(digest)
        unprotected.append((SIGNATURE_TLV_FOR_KEY[key.type], signature))
    out += encode_tlv_block(unprotected, protected=False)
    image_size = len(out)

    if slot_size and image_size + layout.size > slot_size:
        raise CapacityError(
            f"image of {image_size} bytes (0x{image_size:x}) plus its {layout.size}-byte trailer "
            f"(0x{layout.size:x}) does not fit the slot of {slot_size} bytes (0x{slot_size:x})")
    built = BuiltImage(b"", image_size, header, digest, signature, layout, pad, confirm)
    if pad:
        out += bytes([erased_val]) * (slot_size - image_size)
        for offset, value in built.trailer_writes():
            out[offset : offset + len(value)] = value
    return built._replace(data=bytes(out))


def _protected_records(version: ImageVersion, security_counter: int | Literal["auto"] | None,
                       dependencies: Sequence[Dependency], custom_tlvs: Sequence[tuple[int, bytes]]
                       ) -> list[tuple[int, bytes]]:
    records: list[tuple[int, bytes]] = []
    if security_counter is not None:
        counter = security_counter_for(version) if security_counter == "auto" else security_counter
        if not 0 <= counter <= 0xFFFFFFFF:
            raise UsageError(f"security counter {counter} does not fit 32 bits (0..4294967295)")
        records.append((TlvType.SEC_CNT, encode_security_counter(counter)))
    for dep in dependencies:
        if not 0 <= dep.image_id <= 0xFF:
            raise UsageError(f"dependency image id {dep.image_id} is not 0..255")
        records.append((TlvType.DEPENDENCY, dep.encode()))
    seen: set[int] = set()
    for code, value in custom_tlvs:
        if code not in VENDOR_TLV_RANGE:
            raise UsageError(f"custom TLV type 0x{code:04x} is outside the vendor range 0x00a0-0xfffe")
        if code in seen:
            raise UsageError(f"custom TLV type 0x{code:04x} given twice")
        seen.add(code)
        records.append((code, bytes(value)))
    return records
