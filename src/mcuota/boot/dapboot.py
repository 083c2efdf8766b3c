"""Seed 003, dapboot: a USB DFU bootloader that writes the download straight over the application.

On reset dapboot stays in DFU mode when backup register BKP_DR1 reads 0x4F42 (the application's
"reboot into the bootloader", cleared as it is read), when the BOOT1 button is held, or when the
application looks invalid, for which its only test is the initial stack pointer
(``SP & 0x2FFE0000 == 0x20000000``). Otherwise it jumps to 0x08002000. In DFU mode the host sends
``wTransferSize`` (1024-byte) blocks that are written one after the other from the start of the
application area (the block number is ignored); a page is erased when the write pointer enters it and
every programmed half-word is read back (mismatch: errVERIFY). Manifestation validates the application
(failure: errFIRMWARE) and resets into it.

There is no second copy, so a download that stops half-way cannot give the old application back. What
must not happen is the opposite: a half-written application that *passes* the SP test and is started.
Written in order, the vector table is the first thing on the page, so with the seed's behaviour a cut
after the first block leaves a plausible SP in front of junk. This model holds back the upper
half-word of the initial SP (so the word reads 0xFFFFxxxx and fails the test) until manifestation,
where programming it is the commit: before it the application is invalid and dapboot comes up in DFU
mode, after it the whole image is there. DFU mode is never a brick (STAY, recoverable): the host
(``board.state.host["dfu"]``, a DFU file with suffix) sends the file again, as ``dfu-util -w`` would.

The host checks the DFU suffix (CRC, and that it names 1209:DB42 or any device) before it talks to the
device, so a corrupted file never reaches the flash. A file larger than the application area is only
noticed when a block would pass its end (errADDRESS); by then the old application is gone and the
device waits in DFU mode for a file that fits. There is no version check in this system.
"""

from __future__ import annotations

from mcuota.boot.board import Board
from mcuota.boot.flashops import pad_to_unit, read_vectors, stm32_sp_plausible
from mcuota.boot.layout import Layout
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.errors import FormatError, UsageError
from mcuota.flash import NorFlash
from mcuota.image.dfu import add_dfu_suffix, ensure_for_device, split_dfu_file
from mcuota.image.version import ImageVersion

VID, PID = 0x1209, 0xDB42
BKP_DR1 = "BKP_DR1"
CMD_BOOT = 0x4F42
BUTTON = "BOOT1"
CHANNEL = "dfu"
_HELD = slice(2, 4)  # the upper half-word of the initial SP, programmed at manifestation
_MAX_RESETS = 4


class DapbootStrategy(Strategy):
    name = "dapboot"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self._app = layout.partition("app")
        self._transfer = int(layout.options.get("transfer_size", 1024))

    # -- images ---------------------------------------------------------------------------------------
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        """A DFU file: the raw application with a suffix naming dapboot's VID:PID."""
        return ReleaseImage(add_dfu_suffix(payload, vid=VID, pid=PID), bytes(payload), version)

    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        flash = board.flashes[self._app.device]
        flash.erase_range(self._app.address, len(release.payload))
        flash.program(self._app.address, pad_to_unit(release.payload, flash.write_unit))

    # -- application side -----------------------------------------------------------------------------
    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """The application writes 0x4F42 to BKP_DR1 and resets; the host waits with the file."""
        board.state.backup[BKP_DR1] = CMD_BOOT
        board.state.host[CHANNEL] = release.data

    # -- bootloader -----------------------------------------------------------------------------------
    def boot(self, board: Board) -> BootResult:
        log: list[str] = []
        flash = board.flashes[self._app.device]
        for _ in range(_MAX_RESETS):
            why = self._dfu_reason(board, flash)
            if why is None:
                return BootResult(BootAction.JUMP, self._app.address, "app", "application SP looks valid",
                                  log)
            log.append(f"DFU mode ({why})")
            data = board.state.host.get(CHANNEL)
            if data is None:
                return BootResult(BootAction.STAY, reason=f"DFU mode ({VID:04x}:{PID:04x}), waiting for a "
                                  "download", log=log, recoverable=True)
            error = self._download(flash, data, log)
            del board.state.host[CHANNEL]  # the host is done: dfu-util reported success or the error
            if error is not None:
                log.append(error)
                return BootResult(BootAction.STAY, reason=f"dfuERROR: {error}", log=log, recoverable=True)
            log.append("manifestation: application valid; reset")
        return BootResult(BootAction.STAY, reason="reset loop in the bootloader", log=log, recoverable=True)

    def _dfu_reason(self, board: Board, flash: NorFlash) -> str | None:
        backup = board.state.backup
        if backup.get(BKP_DR1) == CMD_BOOT:
            backup[BKP_DR1] = 0
            return "BKP_DR1 = 0x4F42"
        if board.state.buttons.get(BUTTON):
            return f"{BUTTON} button held"
        sp, _reset = read_vectors(flash, self._app.address)
        if not stm32_sp_plausible(sp):
            return f"no valid application: initial SP 0x{sp:08x}"
        return None

    def _download(self, flash: NorFlash, data: bytes, log: list[str]) -> str | None:
        """One DFU download and manifestation; returns the error that ended it, or None."""
        try:
            payload, suffix = split_dfu_file(data)
            ensure_for_device(suffix, VID, PID)
        except (FormatError, UsageError) as exc:
            return f"the host refused the file before downloading: {exc}"
        start, end = self._app.address, self._app.end
        pointer = erased_to = start
        held = b"\xff\xff"
        for offset in range(0, len(payload), self._transfer):
            block = pad_to_unit(payload[offset:offset + self._transfer], flash.write_unit)
            if pointer + len(block) > end:
                return (f"errADDRESS: block {offset // self._transfer} would write past the application "
                        f"area at 0x{end:08x} ({len(payload)} bytes sent)")
            while erased_to < pointer + len(block):  # the write pointer enters a new page
                page = flash.sector_at(erased_to)
                flash.erase(page.start)
                erased_to = page.end
            if pointer == start:
                held = block[_HELD]
                block = block[:_HELD.start] + b"\xff\xff" + block[_HELD.stop:]
            flash.program(pointer, block)
            if flash.read(pointer, len(block)) != block:
                return f"errVERIFY: read-back mismatch in block {offset // self._transfer}"
            pointer += len(block)
        log.append(f"downloaded {len(payload)} bytes in {-(-len(payload) // self._transfer)} blocks")
        flash.program(start + _HELD.start, held)  # manifestation: the commit
        sp, _reset = read_vectors(flash, start)
        if not stm32_sp_plausible(sp):
            return f"errFIRMWARE: the downloaded application's SP 0x{sp:08x} is not in SRAM"
        return None
