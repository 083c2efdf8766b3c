"""The image trailer at the end of each slot: where MCUboot keeps an upgrade's request and progress.

From the slot's end downwards (each field padded to ``max_align``, the largest write size of the two
slots, 8 unless a flash needs 16 or 32)::

    S - 16                  magic (16 bytes; with max_align > 8 it starts with max_align as u16)
    S - M - A               image_ok    (M = 16 rounded up to max_align, A = max_align)
    S - M - 2A              copy_done
    S - M - 3A              swap_info   (bits 0-3 swap type, 4-7 image number)
    S - M - 4A              swap_size   (u32)
    below                   swap status: max_sectors x 3 records x align bytes (not in overwrite-only)

A flag byte reads as *set* when it is 0x01, *unset* when it is the erased value and *bad* otherwise,
exactly as bootutil decodes it, so that a torn write in the flash model is judged as MCUboot would.
Sizes follow imgtool (which decides what ``--pad`` writes); the swap decision itself is the
bootloader's business, this module only says what the trailer holds.
"""

from __future__ import annotations

import struct
from enum import IntEnum, StrEnum
from typing import Literal, NamedTuple

from mcuota.errors import FormatError, UsageError

BOOT_MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")
_ALIGNED_MAGIC_TAIL = bytes.fromhex("2de15d29410b8d77679c110f1f8a")
MAGIC_SIZE = 16
DEFAULT_MAX_ALIGN = 8
DEFAULT_MAX_SECTORS = 128
VALID_ALIGNS = (1, 2, 4, 8, 16, 32)
VALID_MAX_ALIGNS = (8, 16, 32)
FLAG_SET = 0x01


class SwapType(IntEnum):
    """``swap_info`` low nibble, and what a trailer asks the bootloader to do."""

    NONE = 1
    TEST = 2
    PERM = 3
    REVERT = 4
    FAIL = 5
    PANIC = 0xFF


class MagicState(StrEnum):
    GOOD = "good"
    UNSET = "unset"
    BAD = "bad"


class FlagState(StrEnum):
    SET = "set"
    UNSET = "unset"
    BAD = "bad"


def boot_magic(max_align: int = DEFAULT_MAX_ALIGN) -> bytes:
    """The 16 magic bytes; MCUboot built with BOOT_MAX_ALIGN > 8 uses a variant that records it."""
    if max_align == DEFAULT_MAX_ALIGN:
        return BOOT_MAGIC
    return struct.pack("<H", max_align) + _ALIGNED_MAGIC_TAIL


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


class TrailerLayout:
    """Where each trailer field lives in a slot of ``slot_size`` bytes for one flash configuration.

    ``align`` is the flash write size (imgtool --align); ``max_align`` defaults to max(8, align).
    Immutable and compared by value; invalid combinations are refused when it is made.
    """

    __slots__ = ("align", "erased_val", "max_align", "max_sectors", "overwrite_only", "slot_size")

    def __init__(self, slot_size: int, align: int = 1, erased_val: int = 0xFF,  # noqa: PLR0917
                 max_sectors: int = DEFAULT_MAX_SECTORS, overwrite_only: bool = False,
                 max_align: int | None = None) -> None:
        if align not in VALID_ALIGNS:
            raise UsageError(f"alignment {align} is not one of {', '.join(map(str, VALID_ALIGNS))}")
        if max_align is not None and max_align not in VALID_MAX_ALIGNS:
            raise UsageError(f"max alignment {max_align} is not one of 8, 16, 32")
        if max_align is not None and max_align < align:
            raise UsageError(f"max alignment {max_align} is smaller than the alignment {align}")
        if erased_val not in (0x00, 0xFF):
            raise UsageError(f"erased value 0x{erased_val:02x} must be 0x00 or 0xff")
        if max_sectors < 1:
            raise UsageError(f"max sectors {max_sectors} must be at least 1")
        if slot_size < 0:
            raise UsageError("slot size must not be negative")
        for name, value in (("slot_size", slot_size), ("align", align), ("erased_val", erased_val),
                            ("max_sectors", max_sectors), ("overwrite_only", overwrite_only),
                            ("max_align", max_align)):
            object.__setattr__(self, name, value)

    slot_size: int
    align: int
    erased_val: int
    max_sectors: int
    overwrite_only: bool
    max_align: int | None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TrailerLayout is immutable (cannot set {name})")

    def _key(self) -> tuple[int, int, int, int, bool, int]:
        return (self.slot_size, self.align, self.erased_val, self.max_sectors, self.overwrite_only,
                self.field_align)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrailerLayout) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"TrailerLayout(slot_size={self.slot_size:#x}, align={self.align}, "
                f"erased_val={self.erased_val:#04x}, max_sectors={self.max_sectors}, "
                f"overwrite_only={self.overwrite_only}, max_align={self.max_align})")

    @property
    def field_align(self) -> int:
        """The effective max_align: every trailer field occupies this many bytes."""
        return self.max_align if self.max_align is not None else max(DEFAULT_MAX_ALIGN, self.align)

    @property
    def magic(self) -> bytes:
        return boot_magic(self.field_align)

    @property
    def magic_area(self) -> int:
        return _align_up(MAGIC_SIZE, self.field_align)

    @property
    def size(self) -> int:
        """Bytes the trailer reserves at the end of the slot (imgtool's ``_trailer_size``): an image
        must end at or before :attr:`offset`."""
        a = self.field_align
        if self.overwrite_only:
            return 2 * a + self.magic_area
        return self.max_sectors * 3 * self.align + 4 * a + self.magic_area

    @property
    def offset(self) -> int:
        """Where the reserved trailer starts in the slot."""
        return self.slot_size - self.size

    @property
    def span(self) -> int:
        """Bytes from the lowest field (swap_size) to the slot's end. Equal to :attr:`size` except in
        overwrite-only, where imgtool reserves less than the four fields MCUboot still lays out."""
        return max(self.size, 4 * self.field_align + self.magic_area)

    @property
    def magic_offset(self) -> int:
        return self.slot_size - MAGIC_SIZE

    @property
    def image_ok_offset(self) -> int:
        return self.slot_size - self.magic_area - self.field_align

    @property
    def copy_done_offset(self) -> int:
        return self.image_ok_offset - self.field_align

    @property
    def swap_info_offset(self) -> int:
        return self.image_ok_offset - 2 * self.field_align

    @property
    def swap_size_offset(self) -> int:
        return self.image_ok_offset - 3 * self.field_align

    @property
    def status_offset(self) -> int:
        """Start of the swap-status area (records of ``align`` bytes); empty in overwrite-only."""
        return self.offset


def trailer_size(*, align: int = 1, max_sectors: int = DEFAULT_MAX_SECTORS, overwrite_only: bool = False,
                 max_align: int | None = None) -> int:
    """Trailer bytes for a flash configuration, independent of the slot size."""
    return TrailerLayout(0, align, max_sectors=max_sectors, overwrite_only=overwrite_only,
                         max_align=max_align).size


def encode_trailer(layout: TrailerLayout, *, magic: bool = True, image_ok: bool = False,
                   copy_done: bool = False, swap_type: SwapType | None = None, image_num: int = 0,
                   swap_size: int | None = None) -> bytes:
    """The last ``layout.span`` bytes of the slot: erased except for the fields asked for.

    ``encode_trailer(layout)`` is what ``imgtool --pad`` writes (magic only: a test swap);
    adding ``image_ok=True`` is ``--confirm`` (permanent).
    """
    info = swap_info_byte(swap_type, image_num) if swap_type is not None else None
    if not 0 <= image_num <= 0xF:
        raise UsageError(f"image number {image_num} does not fit swap_info's 4 bits")
    out = bytearray([layout.erased_val]) * layout.span
    base = layout.slot_size - layout.span

    def put(offset: int, value: bytes) -> None:
        out[offset - base : offset - base + len(value)] = value

    if magic:
        put(layout.magic_offset, layout.magic)
    if image_ok:
        put(layout.image_ok_offset, bytes([FLAG_SET]))
    if copy_done:
        put(layout.copy_done_offset, bytes([FLAG_SET]))
    if info is not None:
        put(layout.swap_info_offset, bytes([info]))
    if swap_size is not None:
        if not 0 <= swap_size <= 0xFFFFFFFF:
            raise UsageError(f"swap size {swap_size} does not fit 32 bits")
        put(layout.swap_size_offset, struct.pack("<I", swap_size))
    return bytes(out)


TrailerField = Literal["magic", "image_ok", "copy_done", "swap_info", "swap_size"]


def trailer_write(layout: TrailerLayout, field: TrailerField, value: int = FLAG_SET) -> tuple[int, bytes]:
    """(slot offset, bytes) of one field update as bootutil programs it, padded with the erased value to
    the flash write size: the magic as its whole aligned area (padding first), a flag or swap_info as
    ``align`` bytes, swap_size as 4 bytes rounded up to ``align``. A flash model that refuses
    unaligned or partial writes accepts exactly these.
    """
    erased = layout.erased_val
    if field == "magic":
        return (layout.slot_size - layout.magic_area,
                bytes([erased]) * (layout.magic_area - MAGIC_SIZE) + layout.magic)
    if field == "swap_size":
        if not 0 <= value <= 0xFFFFFFFF:
            raise UsageError(f"swap size {value} does not fit 32 bits")
        raw = struct.pack("<I", value)
        offset = layout.swap_size_offset
    else:
        if not 0 <= value <= 0xFF:
            raise UsageError(f"{field} value {value} is not a byte")
        raw = bytes([value])
        offset = {"image_ok": layout.image_ok_offset, "copy_done": layout.copy_done_offset,
                  "swap_info": layout.swap_info_offset}[field]
    return offset, raw + bytes([erased]) * (_align_up(len(raw), layout.align) - len(raw))


def swap_info_byte(swap_type: SwapType, image_num: int = 0) -> int:
    """The swap_info value MCUboot writes: image number in the high nibble, swap type in the low one."""
    if not 0 <= image_num <= 0xF:
        raise UsageError(f"image number {image_num} does not fit swap_info's 4 bits")
    return (image_num << 4) | (int(swap_type) & 0x0F)


class TrailerState(NamedTuple):
    """A slot's trailer as bootutil reads it (``boot_read_swap_state``)."""

    magic: MagicState
    image_ok: FlagState
    copy_done: FlagState
    swap_type: SwapType
    """From swap_info; NONE when swap_info is erased or holds a type above REVERT, as bootutil does."""
    image_num: int
    swap_info_raw: int
    swap_size: int | None
    """None while the field is erased."""

    def to_dict(self) -> dict[str, object]:
        return {"magic": str(self.magic), "image_ok": str(self.image_ok), "copy_done": str(self.copy_done),
                "swap_type": self.swap_type.name, "image_num": self.image_num,
                "swap_info_raw": self.swap_info_raw, "swap_size": self.swap_size}


def _flag(value: int, erased: int) -> FlagState:
    if value == FLAG_SET:
        return FlagState.SET
    if value == erased:
        return FlagState.UNSET
    return FlagState.BAD


def decode_trailer(data: bytes, layout: TrailerLayout) -> TrailerState:
    """Read the trailer fields from the end of ``data`` (a whole slot, or at least its last layout.span
    bytes); field offsets are taken relative to the end, so either works."""
    if len(data) < layout.span:
        raise FormatError(f"truncated: {len(data)} bytes cannot hold a {layout.span}-byte trailer")
    shift = len(data) - layout.slot_size
    erased = layout.erased_val

    def at(offset: int, size: int) -> bytes:
        return bytes(data[offset + shift : offset + shift + size])

    raw_magic = at(layout.magic_offset, MAGIC_SIZE)
    if raw_magic == bytes([erased]) * MAGIC_SIZE:
        magic = MagicState.UNSET
    elif raw_magic == layout.magic:
        magic = MagicState.GOOD
    else:
        magic = MagicState.BAD
    swap_info = at(layout.swap_info_offset, 1)[0]
    if swap_info == erased or (swap_info & 0x0F) > SwapType.REVERT or (swap_info & 0x0F) == 0:
        swap_type, image_num = SwapType.NONE, 0
    else:
        swap_type, image_num = SwapType(swap_info & 0x0F), swap_info >> 4
    raw_size = at(layout.swap_size_offset, 4)
    swap_size = None if raw_size == bytes([erased]) * 4 else int(struct.unpack("<I", raw_size)[0])
    return TrailerState(
        magic=magic,
        image_ok=_flag(at(layout.image_ok_offset, 1)[0], erased),
        copy_done=_flag(at(layout.copy_done_offset, 1)[0], erased),
        swap_type=swap_type, image_num=image_num, swap_info_raw=swap_info, swap_size=swap_size,
    )
