"""A NOR flash device as bootloader code sees it: read anything, program erased cells, erase sectors.

Every simulated bootloader runs on this class, and an exhaustive power-cut sweep replays each of them
thousands of times, so the hot paths are a handful of bytes-level operations: an erased check is one
``bytearray.count``, a program is one slice assignment, an erase assigns a cached fill, and
overwrite rules use ``int.from_bytes`` arithmetic instead of walking bytes in Python. Per-unit loops
only run on the paths that end in an error message.

Bits only move one way between erases (1→0 for erased 0xFF, 0→1 for erased 0x00); whether programming
a unit that is not erased is refused, allowed for an all-zero value (STM32F1) or ANDed in (SPI NOR) is
the part's :class:`~mcuota.flash.part.OverwriteRule`.
"""

from __future__ import annotations

from typing import NoReturn

from mcuota.errors import UsageError
from mcuota.flash.errors import (
    FlashAddressError,
    FlashAlignmentError,
    FlashProgramError,
    FlashWearError,
)
from mcuota.flash.geometry import Geometry, Sector
from mcuota.flash.part import Duration, FlashPart, OverwriteRule, unit_name
from mcuota.flash.power import OpKind, PowerDomain
from mcuota.flash.state import FlashSnapshot

BytesLike = bytes | bytearray | memoryview
_FILL_CACHE_LIMIT = 256 * 1024


class NorFlash:
    """One flash device (internal flash of an MCU, or the array behind an SPI NOR chip).

    ``domain`` is the board's power rail; devices created without one get a private rail. With
    ``enforce_endurance`` an erase of a sector that already reached the part's rated cycles raises
    :class:`FlashWearError` instead of just being counted.
    """

    def __init__(self, part: FlashPart, domain: PowerDomain | None = None, *, name: str | None = None,
                 enforce_endurance: bool = False) -> None:
        geometry = part.geometry
        self._part = part
        self._name = name or part.name
        self._geometry = geometry
        self._base = geometry.base
        self._size = geometry.size
        self._erased = part.erased
        self._programmed = part.programmed
        self._unit = part.write_unit
        self._fill_byte = bytes((part.erased,))
        self._data = bytearray(self._fill_byte) * geometry.size
        self._wear = [0] * len(geometry.sectors)
        self._fills: dict[int, bytes] = {}
        self._erase_times = dict(part.erase_times)
        self._prog_unit = part.program_time_unit
        self._prog_typ, self._prog_max = part.program_time
        self._typ = 0.0
        self._max = 0.0
        self._ops = 0
        self._enforce = enforce_endurance
        self._domain = domain if domain is not None else PowerDomain()
        self._domain.attach(self)

    # -- what the device is ----------------------------------------------------------------------------
    @property
    def part(self) -> FlashPart:
        return self._part

    @property
    def name(self) -> str:
        return self._name

    @property
    def domain(self) -> PowerDomain:
        return self._domain

    @property
    def geometry(self) -> Geometry:
        return self._geometry

    @property
    def base(self) -> int:
        return self._base

    @property
    def size(self) -> int:
        return self._size

    @property
    def end(self) -> int:
        """First address after the device (exclusive)."""
        return self._base + self._size

    @property
    def erased_value(self) -> int:
        return self._erased

    @property
    def write_unit(self) -> int:
        return self._unit

    @property
    def sectors(self) -> tuple[Sector, ...]:
        return self._geometry.sectors

    def sector_at(self, address: int) -> Sector:
        """The sector holding ``address`` (a :class:`FlashAddressError` outside the device)."""
        try:
            return self._geometry.sector_at(address)
        except FlashAddressError as exc:
            raise FlashAddressError(f"{self._name}: {exc}") from None

    def sectors_in(self, address: int, length: int) -> tuple[Sector, ...]:
        """Sectors overlapping ``[address, address + length)``."""
        try:
            return self._geometry.sectors_in(address, length)
        except FlashAddressError as exc:
            raise FlashAddressError(f"{self._name}: {exc}") from None

    # -- reading ---------------------------------------------------------------------------------------
    def read(self, address: int, length: int) -> bytes:
        """A copy of any range inside the device, across sector boundaries."""
        offset = self._offset(address, length, "read")
        return bytes(memoryview(self._data)[offset:offset + length])

    def view(self, address: int, length: int) -> memoryview:
        """A read-only zero-copy window (for hashing a 1 MB slot without copying it); it follows later
        writes and restores, since those change the buffer in place."""
        offset = self._offset(address, length, "read")
        return memoryview(self._data)[offset:offset + length].toreadonly()

    def is_erased(self, address: int, length: int) -> bool:
        offset = self._offset(address, length, "check")
        return self._data.count(self._erased, offset, offset + length) == length

    # -- programming -----------------------------------------------------------------------------------
    def program(self, address: int, data: BytesLike) -> None:
        """Program ``data`` at ``address`` as one flash operation.

        Address and length must be multiples of the write unit. Units that are not erased are refused,
        allowed or ANDed as the part's overwrite rule says. An empty ``data`` does nothing and is not
        counted: no cell changes.
        """
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)
        self._require_power(OpKind.PROGRAM, address, len(data))
        length = len(data)
        offset = self._offset(address, length, "program")
        unit = self._unit
        if offset % unit or length % unit:
            raise FlashAlignmentError(
                f"{self._name}: program of {length} bytes at 0x{address:08X} is not aligned to the "
                f"{unit}-byte write unit ({unit_name(unit)})")
        if not length:
            return
        self._program_span(offset, data)

    def _program_span(self, offset: int, data: bytes | bytearray) -> None:
        """Rules and commit for an already validated range (subclasses reuse it for page programs)."""
        length = len(data)
        if self._data.count(self._erased, offset, offset + length) == length:
            target: bytes | bytearray = data
        else:
            target = self._overwrite_target(offset, data)
        address = self._base + offset
        torn = self._domain.start_op(self._name, OpKind.PROGRAM, address, length)
        self._ops += 1
        if torn is None:
            self._data[offset:offset + length] = target
            units = -(-length // self._prog_unit)
            self._typ += units * self._prog_typ
            self._max += units * self._prog_max
            return
        old = bytes(self._data[offset:offset + length])
        self._data[offset:offset + length] = torn.program_result(old, bytes(target), self._unit)
        raise torn.loss

    def _overwrite_target(self, offset: int, data: bytes | bytearray) -> bytes | bytearray:
        """What programming over partly non-erased cells leaves, or the error the part raises."""
        rule = self._part.overwrite
        length = len(data)
        old = self._data[offset:offset + length]
        if rule is OverwriteRule.AND:
            before = int.from_bytes(old, "little")
            new = int.from_bytes(data, "little")
            result = before & new if self._erased == 0xFF else before | new
            return result.to_bytes(length, "little")
        unit = self._unit
        if rule is OverwriteRule.ZERO_ONLY:
            if data.count(self._programmed) == length:
                return data
            for start in range(0, length, unit):
                if old.count(self._erased, start, start + unit) == unit:
                    continue
                if data.count(self._programmed, start, start + unit) == unit:
                    continue
                self._refuse(offset + start, old[start:start + unit])
            return data
        first = length - len(old.lstrip(self._fill_byte))
        first -= first % unit
        self._refuse(offset + first, old[first:first + unit])

    def _refuse(self, offset: int, current: bytes | bytearray) -> NoReturn:
        address = self._base + offset
        sector = self._geometry.sector_at(address)
        allowed = ""
        if self._part.overwrite is OverwriteRule.ZERO_ONLY:
            allowed = (f"; only an all-0x{self._programmed:02X} {unit_name(self._unit)} may be written over "
                       "programmed data")
        raise FlashProgramError(
            f"{self._name}: cannot program the {unit_name(self._unit)} at 0x{address:08X}: it reads "
            f"{bytes(current).hex()} and is not erased{allowed}; erase sector {sector.index} at "
            f"0x{sector.start:08X} first")

    # -- erasing ---------------------------------------------------------------------------------------
    def erase(self, address: int) -> None:
        """Erase the one sector that starts at ``address`` (one flash operation)."""
        self._require_power(OpKind.ERASE, address, 0)
        try:
            sector = self._geometry.sector_starting_at(address)
        except FlashAddressError as exc:
            raise FlashAddressError(f"{self._name}: {exc}") from None
        self._erase_span(sector.start - self._base, sector.size, sector.index, sector.index + 1)

    def erase_range(self, address: int, length: int) -> int:
        """Erase every sector overlapping ``[address, address + length)``, one operation each; the
        range must start on a sector and its end rounds up to a sector end (as bootloaders erase a
        slot for an image). Returns the number of sectors erased."""
        try:
            sectors = self._geometry.sectors_in(address, length)
            if sectors:
                self._geometry.sector_starting_at(address)
        except FlashAddressError as exc:
            raise FlashAddressError(f"{self._name}: {exc}") from None
        for sector in sectors:
            self.erase(sector.start)
        return len(sectors)

    def _erase_span(self, offset: int, length: int, first: int, last: int) -> None:
        """Erase sectors ``first..last-1`` (contiguous, ``length`` bytes) as one operation."""
        wear = self._wear
        if self._enforce:
            for index in range(first, last):
                if wear[index] >= self._part.endurance:
                    sector = self._geometry.sectors[index]
                    raise FlashWearError(
                        f"{self._name}: sector {index} at 0x{sector.start:08X} has reached its rated "
                        f"{self._part.endurance} erase cycles")
        torn = self._domain.start_op(self._name, OpKind.ERASE, self._base + offset, length)
        self._ops += 1
        for index in range(first, last):
            wear[index] += 1
        fill = self._fills.get(length)
        if fill is None:
            fill = self._fill_byte * length
            if length <= _FILL_CACHE_LIMIT:  # sector sizes, not a 16 MB chip erase
                self._fills[length] = fill
        if torn is None:
            self._data[offset:offset + length] = fill
            duration = self._erase_times.get(length)
            if duration is not None:
                self._typ += duration.typical
                self._max += duration.maximum
            return
        old = bytes(self._data[offset:offset + length])
        self._data[offset:offset + length] = torn.erase_result(old, fill)
        raise torn.loss

    # -- wear, time, counters ------------------------------------------------------------------------
    def wear(self, address: int) -> int:
        """Erase cycles of the sector holding ``address``."""
        return self._wear[self.sector_at(address).index]

    def wear_counts(self) -> tuple[int, ...]:
        return tuple(self._wear)

    def worn_sectors(self) -> tuple[Sector, ...]:
        """Sectors at or past the part's rated endurance: their data retention is no longer promised."""
        limit = self._part.endurance
        return tuple(s for s, count in zip(self._geometry.sectors, self._wear, strict=True) if count >= limit)

    @property
    def elapsed(self) -> Duration:
        """Modeled seconds spent in completed erases and programs (typical, maximum)."""
        return Duration(self._typ, self._max)

    @property
    def ops(self) -> int:
        """Erases and programs this device started (including a cut-short last one)."""
        return self._ops

    # -- simulator hooks -------------------------------------------------------------------------------
    def poke(self, address: int, data: BytesLike) -> None:
        """Set bytes directly, bypassing physics, counters and faults: a test's or a factory
        programmer's backdoor (e.g. to plant a corrupted header), never for code under test."""
        offset = self._offset(address, len(data), "poke")
        self._data[offset:offset + len(data)] = data

    def power_on_reset(self) -> None:
        """Volatile state to clear at power-up; internal flash has none (SPI NOR clears its latches)."""

    def snapshot(self) -> FlashSnapshot:
        return FlashSnapshot(self._name, self._part.geometry_id, bytes(self._data), tuple(self._wear),
                             Duration(self._typ, self._max), self._ops)

    def restore(self, snapshot: FlashSnapshot) -> None:
        """Put contents, wear, time and op count back in place (one memcpy for the contents)."""
        if snapshot.geometry_id != self._part.geometry_id or len(snapshot.data) != self._size:
            raise UsageError(f"{self._name}: snapshot of {snapshot.geometry_id} does not fit "
                             f"{self._part.geometry_id}")
        self._data[:] = snapshot.data
        self._wear[:] = snapshot.wear
        self._typ, self._max = snapshot.elapsed
        self._ops = snapshot.ops

    def load_state(self, data: bytes, wear: tuple[int, ...], elapsed: Duration | None = None) -> None:
        """Replace contents and wear wholesale (used by :mod:`mcuota.flash.persist` after its checks)."""
        if len(data) != self._size or len(wear) != len(self._wear):
            raise UsageError(f"{self._name}: state of {len(data)} bytes / {len(wear)} sectors does not "
                             f"fit {self._size} bytes / {len(self._wear)} sectors")
        self._data[:] = data
        self._wear[:] = wear
        if elapsed is not None:
            self._typ, self._max = elapsed

    # -- helpers ---------------------------------------------------------------------------------------
    def _offset(self, address: int, length: int, what: str) -> int:
        offset = address - self._base
        if length < 0 or offset < 0 or offset + length > self._size:
            raise FlashAddressError(
                f"{self._name}: {what} of {length} bytes at 0x{address:08X} is outside the flash "
                f"0x{self._base:08X}..0x{self._base + self._size - 1:08X}")
        return offset

    def _require_power(self, kind: OpKind, address: int, length: int) -> None:
        if not self._domain.powered:
            self._domain.start_op(self._name, kind, address, length)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name} {self._part.geometry.describe()}>"
