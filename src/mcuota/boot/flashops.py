"""Flash chores the seed bootloaders share: programming data that is not a whole number of write
units, copying in pieces, and the cheap "does this look like an application" test on two vectors.

Kept apart from the strategies so each strategy module reads as its seed's flowchart.
"""

from __future__ import annotations

import struct

from mcuota.flash import NorFlash

BytesLike = bytes | bytearray | memoryview


def pad_to_unit(data: BytesLike, unit: int, fill: int = 0xFF) -> bytes:
    """``data`` padded up to a multiple of ``unit`` with ``fill`` (0xFF leaves erased cells alone)."""
    raw = bytes(data)
    short = -len(raw) % unit
    return raw + bytes((fill,)) * short if short else raw


def program_padded(flash: NorFlash, address: int, data: BytesLike, fill: int = 0xFF) -> None:
    """One program operation of ``data`` padded to the device's write unit."""
    flash.program(address, pad_to_unit(data, flash.write_unit, fill))


def program_pieces(flash: NorFlash, address: int, data: BytesLike, piece: int, fill: int = 0xFF) -> None:
    """Program ``data`` in ``piece``-byte operations, as firmware does from a receive buffer; the last
    piece is padded to the write unit."""
    view = memoryview(bytes(data))
    for offset in range(0, len(view), piece):
        program_padded(flash, address + offset, view[offset:offset + piece], fill)


def read_vectors(flash: NorFlash, address: int) -> tuple[int, int]:
    """(initial SP, reset handler) of the vector table at ``address``."""
    sp, reset = struct.unpack("<II", flash.read(address, 8))
    return sp, reset


def stm32_sp_plausible(sp: int) -> bool:
    """The STM32 application check most seed bootloaders use: an SP in the 0x2000_0000 SRAM block
    (``sp & 0x2FFE0000 == 0x20000000``, from ST's IAP examples)."""
    return sp & 0x2FFE0000 == 0x20000000


def u32(flash: NorFlash, address: int) -> int:
    value: int = struct.unpack("<I", flash.read(address, 4))[0]
    return value
