"""External SPI NOR (Winbond W25Q): the same array API as internal flash, plus the chip's own commands.

Bootloaders that keep their secondary slot off-chip must not care which device they talk to, so
:class:`W25QFlash` *is* a :class:`~mcuota.flash.nor.NorFlash` — ``program`` / ``erase`` / ``read`` behave
the same and count against the same power domain. What is particular to the chip is also here:

* a page program writes within one 256-byte page and *wraps* to the page start past its end (a driver
  that forgets to split at page boundaries corrupts the page head — :meth:`W25QFlash.page_program`);
  the device-agnostic :meth:`W25QFlash.program` splits like a correct driver, one operation per page;
* 4 KB sector, 32/64 KB block and chip erase, each one operation;
* :class:`W25QSpi`, a byte-level command interface (WREN/WRDI, RDSR1 with BUSY/WEL, page program,
  sector/block/chip erase, read, fast read, JEDEC ID) so a simulated driver can be tested byte by byte,
  including the mistakes real drivers make: a write without WREN is silently ignored, commands sent
  while BUSY are ignored, an erase whose /CS does not rise right after the address is not executed.
"""

from __future__ import annotations

import dataclasses

from mcuota.flash.errors import FlashAddressError
from mcuota.flash.nor import BytesLike, NorFlash
from mcuota.flash.part import FlashPart
from mcuota.flash.power import OpKind, PowerDomain

WREN = 0x06
WRDI = 0x04
RDSR1 = 0x05
PAGE_PROGRAM = 0x02
SECTOR_ERASE_4K = 0x20
BLOCK_ERASE_32K = 0x52
BLOCK_ERASE_64K = 0xD8
CHIP_ERASE = 0xC7
CHIP_ERASE_ALT = 0x60
READ = 0x03
FAST_READ = 0x0B
JEDEC_ID = 0x9F

STATUS_BUSY = 0x01
STATUS_WEL = 0x02

_ERASE_SIZES = {SECTOR_ERASE_4K: 4 * 1024, BLOCK_ERASE_32K: 32 * 1024, BLOCK_ERASE_64K: 64 * 1024}
# Bytes after the opcode before the data phase: 24-bit address, plus one dummy byte for FAST_READ.
_HEADER_LENGTH = {READ: 3, FAST_READ: 4, PAGE_PROGRAM: 3, SECTOR_ERASE_4K: 3, BLOCK_ERASE_32K: 3,
                  BLOCK_ERASE_64K: 3}


@dataclasses.dataclass(frozen=True)
class SpiNorPart(FlashPart):
    """A serial NOR part: adds page size, block erase sizes and the JEDEC ID to the array physics."""

    page_size: int = 256
    block_sizes: tuple[int, ...] = (32 * 1024, 64 * 1024)
    jedec_id: bytes = b"\xef\x40\x18"


class W25QFlash(NorFlash):
    """A W25Q-style SPI NOR chip. ``busy_polls`` is how many RDSR1 reads report BUSY after each
    program or erase started over SPI, so a driver's poll loop is exercised without a wall clock."""

    def __init__(self, part: SpiNorPart, domain: PowerDomain | None = None, *, name: str | None = None,
                 enforce_endurance: bool = False, busy_polls: int = 1) -> None:
        super().__init__(part, domain, name=name, enforce_endurance=enforce_endurance)
        self._spi_part = part
        self._page = part.page_size
        self._spi = W25QSpi(self, busy_polls)

    @property
    def spi(self) -> W25QSpi:
        return self._spi

    @property
    def page_size(self) -> int:
        return self._page

    @property
    def jedec_id(self) -> bytes:
        return self._spi_part.jedec_id

    def program(self, address: int, data: BytesLike) -> None:
        """Program any range, split at page boundaries as a correct driver does: one operation per
        page touched, so a power cut can fall between pages."""
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)
        self._require_power(OpKind.PROGRAM, address, len(data))
        length = len(data)
        offset = self._offset(address, length, "program")
        page = self._page
        position = 0
        while position < length:
            room = page - (offset + position) % page
            self._program_span(offset + position, data[position:position + room])
            position += room

    def page_program(self, address: int, data: BytesLike) -> None:
        """The chip's 02h command as one operation: bytes past the page end wrap to the page start,
        and of more than a page only the last ``page_size`` bytes stay (as the datasheet describes)."""
        if not isinstance(data, bytes | bytearray):
            data = bytes(data)
        self._require_power(OpKind.PROGRAM, address, len(data))
        offset = self._offset(address, 1, "page program")
        length = len(data)
        if not length:
            return
        page = self._page
        column = offset % page
        page_start = offset - column
        if length > page:
            column = (column + length - page) % page
            data = data[-page:]
            length = page
        if column + length <= page:
            self._program_span(page_start + column, data)
            return
        head = page - column
        buffer = bytearray(self._fill_byte * page)  # the erased value leaves cells unchanged (AND / OR)
        buffer[column:] = data[:head]
        buffer[:length - head] = data[head:]
        self._program_span(page_start, buffer)

    def erase_block(self, address: int, size: int) -> None:
        """A 4 KB sector, 32 KB or 64 KB block erase as one operation; ``address`` must be aligned."""
        self._require_power(OpKind.ERASE, address, size)
        allowed = (self._spi_part.geometry.min_sector_size, *self._spi_part.block_sizes)
        if size not in allowed:
            raise FlashAddressError(f"{self.name}: no {size}-byte erase on this chip (sizes {allowed})")
        offset = self._offset(address, size, "erase")
        if offset % size:
            raise FlashAddressError(f"{self.name}: {size}-byte erase at 0x{address:08X} is not aligned "
                                    f"to {size} bytes")
        first = self.geometry.sector_at(address).index
        last = self.geometry.sector_at(address + size - 1).index + 1
        self._erase_span(offset, size, first, last)

    def erase_chip(self) -> None:
        """Erase the whole array as one (long: ~40 s typical) operation."""
        self._require_power(OpKind.ERASE, self.base, self.size)
        self._erase_span(0, self.size, 0, len(self.sectors))

    def read_wrapped(self, address: int, length: int) -> bytes:
        """Sequential read that continues from address 0 past the last byte, as READ does on the chip."""
        size = self.size
        start = (address - self.base) % size
        out = bytearray()
        while length > 0:
            take = min(length, size - start)
            out += self.view(self.base + start, take)
            length -= take
            start = 0
        return bytes(out)

    def power_on_reset(self) -> None:
        self._spi.reset()


class W25QSpi:
    """The chip's SPI side: drive /CS with :meth:`select`/:meth:`deselect` and clock bytes with
    :meth:`transfer` (one byte) or :meth:`exchange` (any number; full duplex, returns MISO bytes).

    Like the chip, it never raises on a malformed command: it ignores it. Program and erase commands
    execute when /CS rises, which is where a power cut can tear them.
    """

    def __init__(self, chip: W25QFlash, busy_polls: int = 1) -> None:
        self._chip = chip
        self._busy_polls = max(0, busy_polls)
        self._wel = False
        self._busy_left = 0
        self._selected = False
        self._opcode = -1
        self._header = bytearray()
        self._need = 0
        self._ignored = False
        self._count = 0
        self._payload = bytearray()

    @property
    def status(self) -> int:
        """Status register 1 as RDSR1 would return it now (without counting as a poll)."""
        return (STATUS_BUSY if self._busy_left else 0) | (STATUS_WEL if self._wel else 0)

    @property
    def selected(self) -> bool:
        return self._selected

    def reset(self) -> None:
        """Power-up state: write-enable latch clear, not busy, no transaction in progress."""
        self._wel = False
        self._busy_left = 0
        self._selected = False
        self._begin()

    def select(self) -> None:
        """/CS low: the next byte clocked in is an opcode."""
        self._selected = True
        self._begin()

    def deselect(self) -> None:
        """/CS high: ends the command and starts its program or erase (may raise :class:`PowerLoss`)."""
        if not self._selected:
            return
        self._selected = False
        opcode, complete = self._opcode, len(self._header) == self._need
        if opcode < 0 or self._ignored:
            return
        if opcode == WREN and self._count == 0:
            self._wel = True
        elif opcode == WRDI:
            self._wel = False
        elif opcode == PAGE_PROGRAM and self._wel and complete and self._count:
            self._start_internal_op()
            self._chip.page_program(self._chip.base + self._address(), bytes(self._payload))
        elif opcode in _ERASE_SIZES and self._wel and complete and self._count == 0:
            size = _ERASE_SIZES[opcode]
            self._start_internal_op()
            self._chip.erase_block(self._chip.base + (self._address() & ~(size - 1)), size)
        elif opcode in (CHIP_ERASE, CHIP_ERASE_ALT) and self._wel and self._count == 0:
            self._start_internal_op()
            self._chip.erase_chip()

    def transfer(self, byte: int) -> int:
        return self.exchange(bytes((byte,)))[0]

    def exchange(self, data: BytesLike) -> bytes:
        """Clock ``data`` out on MOSI; returns what the chip drives on MISO (0xFF where it does not)."""
        data = bytes(data)
        if not self._selected:
            return b"\xff" * len(data)
        out = bytearray()
        position = 0
        while position < len(data):
            if self._opcode < 0:
                self._opcode = data[position]
                self._need = _HEADER_LENGTH.get(self._opcode, 0)
                self._ignored = bool(self._busy_left) and self._opcode != RDSR1
                out.append(0xFF)
                position += 1
            elif len(self._header) < self._need:
                take = min(self._need - len(self._header), len(data) - position)
                self._header += data[position:position + take]
                out += b"\xff" * take
                position += take
            else:
                out += self._data_phase(data[position:])
                position = len(data)
        return bytes(out)

    def command(self, opcode: int, args: BytesLike = b"", read: int = 0) -> bytes:
        """One whole transaction (select, opcode + args, ``read`` bytes clocked in, deselect); returns
        the ``read`` bytes. A convenience for drivers and tests; :meth:`exchange` is the primitive."""
        self.select()
        try:
            reply = self.exchange(bytes((opcode,)) + bytes(args) + b"\xff" * read)
        finally:
            self.deselect()
        return reply[len(reply) - read:] if read else b""

    # -- internals -------------------------------------------------------------------------------------
    def _begin(self) -> None:
        self._opcode = -1
        self._header = bytearray()
        self._need = 0
        self._ignored = False
        self._count = 0
        self._payload = bytearray()

    def _address(self) -> int:
        """The 24-bit address sent, folded into the array as the chip ignores bits above its size."""
        return int.from_bytes(self._header[:3], "big") % self._chip.size

    def _start_internal_op(self) -> None:
        self._wel = False
        self._busy_left = self._busy_polls

    def _data_phase(self, data: bytes) -> bytes:
        count = len(data)
        start = self._count
        self._count += count
        if self._ignored:
            return b"\xff" * count
        opcode = self._opcode
        if opcode in (READ, FAST_READ):
            return self._chip.read_wrapped(self._chip.base + self._address() + start, count)
        if opcode == RDSR1:
            out = bytearray()
            for _ in range(count):
                out.append(self.status)
                if self._busy_left:
                    self._busy_left -= 1
            return bytes(out)
        if opcode == JEDEC_ID:
            ident = self._chip.jedec_id
            return (ident[start:start + count] + b"\xff" * count)[:count]
        if opcode == PAGE_PROGRAM:
            self._payload += data
        return b"\xff" * count
