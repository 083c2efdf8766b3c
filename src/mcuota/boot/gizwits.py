"""Seed 000, Gizwits GoKit MCU OTA 3.1: copy APP_BAK over APP while a FLAG record says so.

The application side (the MCU receiving pieces from the Wi-Fi module) writes the new .bin into APP_BAK,
checks its MD5 against the one the module announced, and only then writes the FLAG record
``{0xEEEE, size, md5}``. The bootloader, on every reset:

* no pending FLAG → jump to APP if its vectors look like an application (reset vector in 0x08xxxxxx,
  ``SP & 0x2FFE0000 == 0x20000000``);
* pending → MD5 of APP_BAK; bad → erase FLAG and boot the old APP; good → erase APP (size rounded up to
  the 1 KB page), copy APP_BAK to APP in 256-byte pieces, MD5 of APP; good → erase FLAG and reset;
  bad → reset with the FLAG still set, so the copy is tried again.

Why no power cut bricks it: the FLAG stays pending from before the first APP erase until APP holds the
whole image, so a cut anywhere in between makes the next boot start the copy over from APP_BAK, which
the bootloader never writes. The FLAG erase at the end is safe either way: a torn erase leaves a record
that is either not pending (APP is complete: boot it) or pending with a size or MD5 that no longer
match APP_BAK (erase FLAG, boot APP, which is complete). Two details are mcuota's: the record's status
half-word is programmed after its size and MD5, so a torn FLAG write cannot look pending with half an
MD5 (the MD5 check would catch that too), and the retry loop is bounded (``max_attempts`` copies per
reset, then STAY) so a copy that can never verify is reported instead of looping forever.

The size and MD5 come from the module's announcement (command 0x19: size u32 BE, MD5 length u16 BE,
MD5 as ASCII hex), so a :class:`ReleaseImage`'s ``data`` is that announcement followed by the .bin.
Version gating (only a higher softVer is pushed) happens in the cloud, not on the device.
"""

from __future__ import annotations

import hashlib
import struct

from mcuota.boot.board import Board
from mcuota.boot.flashops import pad_to_unit, read_vectors, stm32_sp_plausible
from mcuota.boot.layout import Layout, Partition
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.errors import CapacityError, FormatError, IntegrityError
from mcuota.flash import NorFlash
from mcuota.image.gizwits import (
    FLAG_SIZE,
    ROM_STATUS_PENDING,
    GizwitsFlag,
    build_gizwits_metadata,
    decode_flag,
    encode_flag,
    soft_ver_from_version,
)
from mcuota.image.version import ImageVersion

_ANNOUNCE = struct.Struct(">IH32s")  # command 0x19's payload: size, MD5 length (32), MD5 hex
ANNOUNCE_SIZE = _ANNOUNCE.size
_ODD_PAD = 0xEE  # the seed pads odd-length half-word writes with 0xEE
_STATUS_SIZE = 2


def _md5(data: bytes | memoryview) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def announcement(release: ReleaseImage) -> tuple[int, bytes]:
    """(size, MD5) the Wi-Fi module announces for ``release``."""
    return parse_announcement(release.data)[:2]


def parse_announcement(data: bytes) -> tuple[int, bytes, memoryview]:
    """(size, MD5, the .bin) of a release's data; a malformed announcement is a FormatError."""
    if len(data) < ANNOUNCE_SIZE:
        raise FormatError(f"gizwits: {len(data)} bytes is too short for the {ANNOUNCE_SIZE}-byte "
                          "announcement")
    size, md5_length, md5_hex = _ANNOUNCE.unpack_from(data)
    try:
        md5 = bytes.fromhex(md5_hex.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise FormatError("gizwits: the announced MD5 at offset 6 is not 32 hex characters") from None
    if md5_length != 32 or len(md5) != 16:
        raise FormatError(f"gizwits: announced MD5 length {md5_length} at offset 4 (expected 32)")
    return size, md5, memoryview(data)[ANNOUNCE_SIZE:]


class GizwitsStrategy(Strategy):
    name = "gizwits"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self._flag = layout.partition("flag")
        self._app = layout.partition("app")
        self._bak = layout.partition("app_bak")
        self._piece = int(layout.options.get("piece_size", 256))
        self._max_attempts = int(layout.options.get("max_attempts", 3))

    # -- images ---------------------------------------------------------------------------------------
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        metadata = build_gizwits_metadata(payload, soft_ver_from_version(version), max_size=self._app.size)
        header = _ANNOUNCE.pack(metadata.size, 32, metadata.md5_hex.encode("ascii"))
        return ReleaseImage(header + bytes(payload), bytes(payload), version)

    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        flash = board.flashes[self._app.device]
        _size, _md5, payload = parse_announcement(release.data)
        flash.erase_range(self._app.address, len(payload))
        flash.program(self._app.address, pad_to_unit(payload, flash.write_unit, _ODD_PAD))

    # -- application side (the MCU talking to the Wi-Fi module) --------------------------------------
    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """Receive the pieces into APP_BAK, check the MD5, then write the FLAG record (status last).

        Refusals happen before the FLAG is written, so the running application keeps running: an
        announced size over APP_BAK (0x19 is refused, nothing is written) and an MD5 mismatch after the
        last piece (:class:`IntegrityError`; APP_BAK holds junk, which no FLAG points at)."""
        size, md5, payload = parse_announcement(release.data)
        if not 0 < size <= self._bak.size:
            raise CapacityError(f"gizwits: announced size {size} bytes does not fit the "
                                f"{self._bak.size}-byte APP_BAK: the MCU refuses the transfer (0x19)")
        flash = board.flashes[self._bak.device]
        flash.erase_range(self._bak.address, size)
        received = payload[:size]
        for offset in range(0, len(received), self._piece):
            piece = received[offset:offset + self._piece]
            flash.program(self._bak.address + offset, pad_to_unit(piece, flash.write_unit, _ODD_PAD))
        actual = _md5(flash.view(self._bak.address, size))
        if actual != md5:
            raise IntegrityError(f"gizwits: MD5 of the received image is {actual.hex()}, the module "
                                 f"announced {md5.hex()}: FLAG not written, the running firmware stays")
        self._write_flag(board, GizwitsFlag(ROM_STATUS_PENDING, size, md5))

    @property
    def app_bak(self) -> Partition:
        """Where an update is received: an agent that downloads it itself writes here."""
        return self._bak

    def request_staged(self, board: Board, size: int, md5: bytes) -> None:
        """Ask the bootloader to install the ``size`` bytes already in APP_BAK (the FLAG record): what
        :meth:`stage` does after its last piece, for an agent that wrote APP_BAK itself."""
        if not 0 < size <= self._bak.size:
            raise CapacityError(f"gizwits: {size} bytes do not fit the {self._bak.size}-byte APP_BAK")
        self._write_flag(board, GizwitsFlag(ROM_STATUS_PENDING, size, md5))

    def pending_request(self, board: Board) -> GizwitsFlag | None:
        """The FLAG record when it asks for an install, else None."""
        flag = decode_flag(board.flashes[self._flag.device].read(self._flag.address, FLAG_SIZE))
        return flag if flag.pending else None

    def _write_flag(self, board: Board, flag: GizwitsFlag) -> None:
        flash = board.flashes[self._flag.device]
        if not flash.is_erased(self._flag.address, FLAG_SIZE):
            flash.erase(self._flag.address)
        record = encode_flag(flag)
        # size and MD5 first, the pending status half-word last: the status is the commit.
        flash.program(self._flag.address + 4, record[4:])
        flash.program(self._flag.address, record[:_STATUS_SIZE])

    def committed(self, board: Board, release: ReleaseImage) -> bool | None:
        size, md5 = announcement(release)
        flag = decode_flag(board.flashes[self._flag.device].read(self._flag.address, FLAG_SIZE))
        if flag.pending and flag.rom_size == size and flag.md5 == md5:
            return True
        flash = board.flashes[self._app.device]
        return flash.read(self._app.address, len(release.payload)) == release.payload

    # -- bootloader -----------------------------------------------------------------------------------
    def boot(self, board: Board) -> BootResult:
        log: list[str] = []
        flash = board.flashes[self._app.device]
        attempts = 0
        while True:
            flag = decode_flag(flash.read(self._flag.address, FLAG_SIZE))
            if not flag.pending:
                return self._jump(flash, log)
            log.append(f"FLAG pending: {flag.rom_size} bytes, MD5 {flag.md5.hex()}")
            if not 0 < flag.rom_size <= min(self._app.size, self._bak.size):
                log.append(f"refused: size {flag.rom_size} does not fit APP ({self._app.size} bytes); "
                           "FLAG erased, APP boots as it is")
                flash.erase(self._flag.address)
                return self._jump(flash, log)
            if _md5(flash.view(self._bak.address, flag.rom_size)) != flag.md5:
                log.append("refused: MD5 of APP_BAK does not match the FLAG record; FLAG erased, APP boots "
                           "as it is")
                flash.erase(self._flag.address)
                return self._jump(flash, log)
            if attempts >= self._max_attempts:
                return BootResult(BootAction.STAY, reason=f"copy to APP failed its MD5 check {attempts} "
                                  "times; the bootloader would keep retrying with the FLAG set", log=log)
            attempts += 1
            self._copy(flash, flag.rom_size)
            if _md5(flash.view(self._app.address, flag.rom_size)) == flag.md5:
                flash.erase(self._flag.address)
                log.append(f"copied APP_BAK to APP (attempt {attempts}), MD5 good; FLAG erased, reset")
            else:
                log.append(f"MD5 of APP bad after copy attempt {attempts}: reset with the FLAG still set")

    def _copy(self, flash: NorFlash, size: int) -> None:
        flash.erase_range(self._app.address, size)
        length = size + (-size % flash.write_unit)
        for offset in range(0, length, self._piece):
            take = min(self._piece, length - offset)
            flash.program(self._app.address + offset, flash.read(self._bak.address + offset, take))

    def _jump(self, flash: NorFlash, log: list[str]) -> BootResult:
        sp, reset = read_vectors(flash, self._app.address)
        if reset & 0xFF000000 == 0x08000000 and stm32_sp_plausible(sp):
            return BootResult(BootAction.JUMP, self._app.address, "app", "application vectors look valid",
                              log)
        return BootResult(BootAction.STAY, reason=f"no application at APP (SP 0x{sp:08x}, reset vector "
                          f"0x{reset:08x})", log=log)

