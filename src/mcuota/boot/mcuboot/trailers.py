"""The bootloader's side of the slot trailer: reading it once per boot, writing one field per operation,
and recognising a swap journal in it.

Field offsets come from :class:`~mcuota.image.mcuboot.TrailerLayout` and the flag/magic decoding from
:func:`~mcuota.image.mcuboot.decode_trailer`; this module adds only what the bootloader needs beyond
the format: the swap-status records, the erased/written state of single fields, and the journal
*generation*, which lives in the four padding bytes after ``swap_size`` (bootutil writes the u32 and
never reads the padding). Every write is one ``program`` of whole ``align``-byte units, the unit
padded with the erased value, as ``boot_write_trailer`` does.

The generation is stored so that any partial operation can only make it read *smaller*: as ``~gen``
where the erased value is 0xFF and as ``gen`` where it is 0x00. A torn program sets only some of the
bits it should, a torn erase clears only some of the programmed ones; in both encodings that can only
remove one-bits from the decoded number. So a journal damaged by a cut never looks newer than it
was, which is what lets the swap engine pick the newest journal safely (see the package docstring).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from mcuota.boot.mcuboot.geometry import SlotGeometry
from mcuota.flash import NorFlash
from mcuota.image.mcuboot import (
    FlagState,
    MagicState,
    SwapType,
    TrailerField,
    TrailerState,
    decode_trailer,
    swap_info_byte,
    trailer_write,
)

FLAG_SET = 0x01
_U32 = struct.Struct("<I")
_MASK32 = 0xFFFFFFFF
_JOURNAL_TYPES = (SwapType.TEST, SwapType.PERM, SwapType.REVERT)


def encode_gen(gen: int, erased: int) -> int:
    return (~gen) & _MASK32 if erased == 0xFF else gen & _MASK32


def decode_gen(raw: int, erased: int) -> int:
    return (~raw) & _MASK32 if erased == 0xFF else raw


class SlotTrailer:
    """A slot's trailer as read at boot: the raw bytes, decoded once."""

    __slots__ = ("_base", "_erased_unit", "geo", "raw", "state")

    def __init__(self, geo: SlotGeometry, raw: bytes) -> None:
        self.geo = geo
        self.raw = raw
        self.state: TrailerState = decode_trailer(raw, geo.trailer)
        self._erased_unit = bytes((geo.erased,)) * geo.trailer.align
        self._base = geo.size - len(raw)

    def _at(self, offset: int, size: int) -> bytes:
        start = offset - self._base
        return self.raw[start:start + size]

    def _erased(self, offset: int, size: int) -> bool:
        return self._at(offset, size).count(self.geo.erased) == size

    @property
    def region_erased(self) -> bool:
        return self.raw.count(self.geo.erased) == len(self.raw)

    @property
    def magic_good(self) -> bool:
        return self.state.magic is MagicState.GOOD

    @property
    def image_ok_written(self) -> bool:
        """Anything but erased: a set flag, or one whose write was cut (MCUboot's BAD)."""
        return not self._erased(self.geo.trailer.image_ok_offset, 1)

    @property
    def copy_done_written(self) -> bool:
        return not self._erased(self.geo.trailer.copy_done_offset, 1)

    @property
    def copy_done_exact(self) -> bool:
        """copy_done reads exactly 0x01: the commit mark of a secondary or scratch journal."""
        return self._at(self.geo.trailer.copy_done_offset, 1)[0] == FLAG_SET

    @property
    def swap_size_erased(self) -> bool:
        return self._erased(self.geo.trailer.swap_size_offset, 4)

    @property
    def gen(self) -> int:
        raw = _U32.unpack(self._at(self.geo.trailer.swap_size_offset + 4, 4))[0]
        return decode_gen(raw, self.geo.erased)

    def record_written(self, entry: int) -> bool:
        align = self.geo.trailer.align
        return self._at(self.geo.trailer.status_offset + entry * align, align) != self._erased_unit

    def records_done(self, entries: Sequence[int]) -> int:
        """How many of ``entries`` (in step order) are written before the first erased one."""
        done = 0
        for entry in entries:
            if not self.record_written(entry):
                break
            done += 1
        return done

    def describe(self) -> str:
        """One log line in bootutil's words (``magic=good, swap_type=0x2, copy_done=0x1, ...``)."""
        state = self.state
        return (f"magic={state.magic.value}, swap_type=0x{state.swap_info_raw & 0x0F:x}, "
                f"copy_done={_flag_text(state.copy_done)}, image_ok={_flag_text(state.image_ok)}")


def _flag_text(flag: FlagState) -> str:
    return {FlagState.SET: "0x1", FlagState.UNSET: "0x3"}.get(flag, "bad")


def read_trailer(flash: NorFlash, geo: SlotGeometry) -> SlotTrailer:
    """The trailer bytes from its lowest field (or status record) to the end of the slot."""
    span = geo.trailer.span
    return SlotTrailer(geo, flash.read(geo.end - span, span))


# -- writes: one program operation each, as bootutil lays them out (trailer_write) ----------------------
def _write(flash: NorFlash, geo: SlotGeometry, field: TrailerField, value: int = FLAG_SET) -> None:
    offset, data = trailer_write(geo.trailer, field, value)
    flash.program(geo.address + offset, data)


def write_magic(flash: NorFlash, geo: SlotGeometry) -> None:
    _write(flash, geo, "magic")


def write_image_ok(flash: NorFlash, geo: SlotGeometry) -> None:
    _write(flash, geo, "image_ok")


def write_copy_done(flash: NorFlash, geo: SlotGeometry) -> None:
    _write(flash, geo, "copy_done")


def write_swap_info(flash: NorFlash, geo: SlotGeometry, swap_type: SwapType, image_num: int = 0) -> None:
    _write(flash, geo, "swap_info", swap_info_byte(swap_type, image_num))


def write_swap_size(flash: NorFlash, geo: SlotGeometry, swap_size: int, gen: int) -> None:
    """``swap_size`` and, in the four padding bytes after it, the journal generation: one program."""
    offset, data = trailer_write(geo.trailer, "swap_size", swap_size)
    gen_bytes = _U32.pack(encode_gen(gen, geo.erased))
    flash.program(geo.address + offset, data[:4] + gen_bytes + data[8:])


def write_record(flash: NorFlash, geo: SlotGeometry, entry: int, value: int) -> None:
    """Status record ``entry``: ``value`` padded to ``align`` bytes (``boot_write_status``)."""
    align = geo.trailer.align
    data = bytearray((geo.erased,)) * align
    data[0] = value
    flash.program(geo.address + geo.trailer.status_offset + entry * align, data)


# -- journals ------------------------------------------------------------------------------------------
class Journal(NamedTuple):
    """A swap journal found in a trailer.

    ``where`` is the slot holding it. A primary journal is committed by its magic (it is an MCUboot
    trailer in the making); a secondary or scratch journal never carries a magic (so it can never be
    read as an update request) and is committed by copy_done reading exactly 0x01. Only a primary
    journal is ever ``finished`` (copy_done written when the swap completed)."""

    where: str
    swap_type: SwapType
    swap_size: int
    gen: int
    finished: bool
    trailer: SlotTrailer


def parse_journal(trailer: SlotTrailer, *, primary: bool, max_size: int) -> Journal | None:
    state = trailer.state
    if primary:
        if not trailer.magic_good:
            return None
    elif not trailer.copy_done_exact or state.magic is not MagicState.UNSET:
        return None
    if state.swap_info_raw == trailer.geo.erased or state.swap_type not in _JOURNAL_TYPES:
        return None
    size = state.swap_size
    if size is None or not 0 < size <= max_size:
        return None
    gen = trailer.gen
    if gen < 1:
        return None
    finished = primary and trailer.copy_done_written
    return Journal(trailer.geo.name, state.swap_type, size, gen, finished, trailer)
