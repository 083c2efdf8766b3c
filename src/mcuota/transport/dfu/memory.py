"""The flash side of the virtual dapboot: which pages a DFU host may change, and the commit.

Every write goes through the board's :class:`~mcuota.flash.NorFlash`, so a planned power cut lands in
the middle of a download exactly as it would on the board, and what the bootloader finds afterwards is
for :meth:`~mcuota.boot.dapboot.DapbootStrategy.boot` to judge. Like :mod:`mcuota.boot.dapboot`, the
upper half-word of the application's initial stack pointer is held back until manifestation: until
then the application fails dapboot's only validity test and the board comes up in DFU mode (a cut
download is recoverable), and programming those two bytes is the commit.

Refusals are :class:`~mcuota.transport.dfu.protocol.DfuDeviceError` carrying the bStatus the device
reports (errADDRESS outside the flash, errWRITE on the bootloader's own pages, errPROG when the part
refuses a program over data that is not erased, errVERIFY on a read-back mismatch).
"""

from __future__ import annotations

from mcuota.boot.flashops import pad_to_unit, read_vectors, stm32_sp_plausible
from mcuota.boot.layout import Partition
from mcuota.flash import FlashError, NorFlash, Sector
from mcuota.transport.dfu.protocol import DfuDeviceError, Status

_HELD = slice(2, 4)  # upper half-word of the initial SP


class AppMemory:
    def __init__(self, flash: NorFlash, bootloader: Partition, app: Partition) -> None:
        self.flash = flash
        self.bootloader = bootloader
        self.app = app
        self.held: bytes | None = None

    # -- checks ---------------------------------------------------------------------------------------
    def _check_range(self, address: int, length: int, what: str) -> None:
        if address < self.flash.base or address + length > self.flash.end:
            raise DfuDeviceError(Status.ERR_ADDRESS, f"{what} of {length} bytes at 0x{address:08x} is "
                                 f"outside the flash 0x{self.flash.base:08x}..0x{self.flash.end - 1:08x}")
        if address < self.app.address or address + length > self.app.end:
            raise DfuDeviceError(Status.ERR_WRITE, f"{what} at 0x{address:08x} would change the "
                                 f"bootloader's pages (only 0x{self.app.address:08x}..0x"
                                 f"{self.app.end - 1:08x} may be changed)")

    def page(self, address: int) -> Sector:
        if not self.flash.base <= address < self.flash.end:
            raise DfuDeviceError(Status.ERR_ADDRESS, f"address 0x{address:08x} is outside the flash")
        return self.flash.sector_at(address)

    # -- changes ----------------------------------------------------------------------------------------
    def erase_page(self, address: int) -> None:
        """Erase the page holding ``address`` (ST's DfuSe erase takes any address in the page)."""
        page = self.page(address)
        self._check_range(page.start, page.size, "erase")
        try:
            self.flash.erase(page.start)
        except FlashError as exc:
            raise DfuDeviceError(Status.ERR_ERASE, str(exc)) from None
        if page.start <= self.app.address < page.end:
            self.held = None

    def write(self, address: int, data: bytes) -> None:
        """Program ``data`` (padded to the write unit) and read it back."""
        unit = self.flash.write_unit
        if address % unit:
            raise DfuDeviceError(Status.ERR_ADDRESS, f"write at 0x{address:08x} is not aligned to the "
                                 f"{unit}-byte write unit")
        block = pad_to_unit(data, unit)
        self._check_range(address, len(block), "write")
        start = self.app.address
        if address <= start + _HELD.start and start + _HELD.stop <= address + len(block):
            at = start - address
            self.held = block[at + _HELD.start:at + _HELD.stop]
            block = block[:at + _HELD.start] + b"\xff\xff" + block[at + _HELD.stop:]
        self._program(address, block)

    def _program(self, address: int, block: bytes) -> None:
        try:
            self.flash.program(address, block)
        except FlashError as exc:
            raise DfuDeviceError(Status.ERR_PROG, str(exc)) from None
        if self.flash.read(address, len(block)) != block:
            raise DfuDeviceError(Status.ERR_VERIFY, f"read-back mismatch in the {len(block)} bytes "
                                 f"written at 0x{address:08x}")

    def mass_erase(self) -> None:
        """Erase the application area (the bootloader's own pages are protected)."""
        for page in self.flash.sectors_in(self.app.address, self.app.size):
            self.erase_page(page.start)

    def read(self, address: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``address``, cut short at the end of the flash."""
        if not self.flash.base <= address <= self.flash.end:
            raise DfuDeviceError(Status.ERR_ADDRESS, f"read at 0x{address:08x} is outside the flash")
        return self.flash.read(address, min(length, self.flash.end - address))

    def commit(self) -> None:
        """Manifestation: program the held half-word, then dapboot's validity test of the application."""
        start = self.app.address
        if self.held is None and self.flash.is_erased(start, 8):
            raise DfuDeviceError(Status.ERR_NOTDONE, "the download ended before the application's "
                                 "vector table was written")
        if self.held is not None:
            held, self.held = self.held, None
            if held != b"\xff\xff":
                self._program(start + _HELD.start, held)
        sp, _reset = read_vectors(self.flash, start)
        if not stm32_sp_plausible(sp):
            raise DfuDeviceError(Status.ERR_FIRMWARE, f"the application's initial SP 0x{sp:08x} is not "
                                 "in SRAM")
