"""Seed 001, the custom STM32 header bootloader, made power-cut safe.

The seed keeps ``{ota_flag, magic, size, crc, version}`` in a header page in front of the application;
the application requests an update by turning ``ota_flag`` to 1, and the bootloader validates the
staged OTA image (16-byte header + payload), erases the application, copies it while computing the
CRC, compares, writes the header record and clears the flag. Taken literally that cannot survive a
power cut: ``ota_flag`` sits in the page whose record validates the running application, and setting
a flag word that reads 0 back to 1 needs an erase of that page. A cut after that erase and before the
record is rewritten leaves a valid application that the bootloader no longer recognises, and no
request either: the device is bricked by the act of *asking* for an update.

This variant keeps every step of the seed and moves one thing, the request:

* **The request is a word in front of the staged image** (``staging + 0``; the image starts at
  ``staging + image_offset``). The application erases the staging area for every download anyway, so
  the word is erased when it programs 1 into it, *after* the whole image is written: the request is the
  commit of staging. The bootloader clears it by programming 0 over it, which every part allows
  without an erase (STM32F1: an all-zero half-word may overwrite; SPI NOR: programming ANDs). Only an
  explicit 1 is a request; erased, cleared and torn values are not.
* **The header record is written last.** With the request pending the bootloader does not need the
  header page: it erases it first, then the application, copies, checks the CRC and only then programs
  the record, and clears the request after that. A cut anywhere leaves the request set and a staged
  image that still verifies, so the next boot does the same work again; the copy is idempotent.
* **The staged image is verified before anything is erased**: magic, size no larger than the
  application area, CRC of the staged payload, and no downgrade below the installed version (unless
  the layout's ``allow_downgrade`` option says otherwise). A refused image costs nothing: the
  request is cleared and the installed application boots, with the reason in the log. The CRC is
  still computed again over the copy, as the seed does; if *that* fails (a flash that does not hold
  what was written), the bootloader stays with the request set so the next reset retries.

The application's CRC is checked on every boot against the header record before jumping; an
application without a valid record is never started. The CRC variant is the layout's ``crc`` option
(``crc32`` as the seed's image script computes it, or ``crc32-stm32`` for the hardware unit). The
header's u32 version is ``major << 24 | minor << 16 | revision``, so integer order is version order.
"""

from __future__ import annotations

import struct

from mcuota.boot.board import Board
from mcuota.boot.flashops import pad_to_unit, u32
from mcuota.boot.layout import Layout, Partition
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.errors import CapacityError
from mcuota.flash import NorFlash
from mcuota.image.checksums import BytesLike, crc32, crc32_stm32
from mcuota.image.stm32_header import (
    APP_HEADER_SIZE,
    HEADER_SIZE,
    MAGIC,
    OTA_FLAG_REQUEST,
    AppHeader,
    CrcVariant,
    Stm32Header,
    build_stm32_image,
    crc_variant,
    decode_app_header,
    encode_app_header,
    looks_like,
    parse_stm32_image,
)
from mcuota.image.version import ImageVersion

_PIECE = 1024  # the bootloader's copy buffer
_REQUEST_CLEARED = b"\x00\x00\x00\x00"


def version_word(version: ImageVersion) -> int:
    """``major.minor.revision`` as the header's u32 (its integer order is the version order)."""
    return version.major << 24 | version.minor << 16 | version.revision


def _crc(data: BytesLike, variant: CrcVariant) -> int:
    """The header's CRC over flash contents read in place (no copy of the application)."""
    return crc32(data) if variant == "crc32" else crc32_stm32(data)


def version_of(word: int) -> ImageVersion:
    return ImageVersion(word >> 24, (word >> 16) & 0xFF, word & 0xFFFF)


class Stm32HeaderStrategy(Strategy):
    name = "stm32-header"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self._header = layout.partition("header")
        self._app = layout.partition("app")
        self._staging = layout.partition("staging")
        self._crc = crc_variant(str(layout.options.get("crc", "crc32")))
        self._image_offset = int(layout.options.get("image_offset", 16))
        self._allow_downgrade = bool(layout.options.get("allow_downgrade", False))

    # -- images ---------------------------------------------------------------------------------------
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        data = build_stm32_image(payload, version_word(version), crc=self._crc, max_size=self._app.size)
        return ReleaseImage(data, bytes(payload), version)

    def parse_release(self, data: bytes) -> ReleaseImage | None:
        if not looks_like(data):
            return None
        image = parse_stm32_image(data)
        return ReleaseImage(bytes(data), image.payload, version_of(image.header.version))

    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        image = parse_stm32_image(release.data)
        flash = board.flashes[self._app.device]
        flash.erase_range(self._app.address, len(image.payload))
        flash.program(self._app.address, pad_to_unit(image.payload, flash.write_unit))
        record = AppHeader(0, image.header.magic, image.header.size, image.header.crc, image.header.version)
        header_flash = board.flashes[self._header.device]
        header_flash.erase(self._header.address)
        header_flash.program(self._header.address,
                             pad_to_unit(encode_app_header(record), header_flash.write_unit))

    # -- application side -----------------------------------------------------------------------------
    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """Write the OTA image into the erased staging area, then program the request word (commit)."""
        data = release.data
        room = self._staging.size - self._image_offset
        if len(data) > room:
            raise CapacityError(f"stm32-header: OTA image of {len(data)} bytes does not fit the {room}-byte "
                                f"staging area: nothing written")
        flash = board.flashes[self._staging.device]
        flash.erase_range(self._staging.address, self._image_offset + len(data))
        start = self._staging.address + self._image_offset
        for offset in range(0, len(data), _PIECE):
            flash.program(start + offset, pad_to_unit(data[offset:offset + _PIECE], flash.write_unit))
        flash.program(self._staging.address, struct.pack("<I", OTA_FLAG_REQUEST))

    @property
    def staging(self) -> Partition:
        return self._staging

    @property
    def image_offset(self) -> int:
        """Where the OTA image starts in the staging area (the request word sits in front of it)."""
        return self._image_offset

    @property
    def crc(self) -> CrcVariant:
        return self._crc

    def request_staged(self, board: Board) -> None:
        """Program the request word over an OTA image already written to the erased staging area: what
        :meth:`stage` does last, for an agent that wrote the image itself."""
        flash = board.flashes[self._staging.device]
        flash.program(self._staging.address, struct.pack("<I", OTA_FLAG_REQUEST))

    def request_pending(self, board: Board) -> bool:
        return u32(board.flashes[self._staging.device], self._staging.address) == OTA_FLAG_REQUEST

    def installed_version(self, board: Board) -> ImageVersion | None:
        """The version in the header record of the application the bootloader would start, if any."""
        record = self._record(board)
        return version_of(record.version) if record.has_app else None

    def committed(self, board: Board, release: ReleaseImage) -> bool | None:
        flash = board.flashes[self._staging.device]
        staged = flash.read(self._staging.address + self._image_offset, HEADER_SIZE)
        if u32(flash, self._staging.address) == OTA_FLAG_REQUEST and staged == release.data[:HEADER_SIZE]:
            return True
        app = board.flashes[self._app.device]
        return bool(app.read(self._app.address, len(release.payload)) == release.payload
                    and self._record(board).crc == Stm32Header.unpack(release.data).crc)

    # -- bootloader -----------------------------------------------------------------------------------
    def boot(self, board: Board) -> BootResult:
        log: list[str] = []
        staging = board.flashes[self._staging.device]
        request = u32(staging, self._staging.address)
        if request == OTA_FLAG_REQUEST:
            problem, header = self._check_staged(board)
            if problem is not None:
                log.append(f"refused the staged image: {problem}; request cleared, the installed "
                           "application keeps running")
                staging.program(self._staging.address, _REQUEST_CLEARED)
            else:
                assert header is not None
                log.append(f"OTA request: installing {header.size} bytes, version "
                           f"{version_of(header.version)}")
                if not self._install(board, header, log):
                    return BootResult(BootAction.STAY, reason="CRC of the copied application does not match "
                                      "the OTA header; request kept so the next reset retries", log=log)
                staging.program(self._staging.address, _REQUEST_CLEARED)
                log.append("header written, request cleared")
        elif request not in (0xFFFFFFFF, 0):
            log.append(f"request word reads 0x{request:08x}: not a request")
        return self._jump(board, log)

    def _check_staged(self, board: Board) -> tuple[str | None, Stm32Header | None]:
        staging = board.flashes[self._staging.device]
        start = self._staging.address + self._image_offset
        header = Stm32Header.unpack(staging.read(start, HEADER_SIZE))
        if header.magic != MAGIC:
            return f"bad magic 0x{header.magic:08x} (expected 0x{MAGIC:08x})", None
        room = self._staging.size - self._image_offset - HEADER_SIZE
        if not 0 < header.size <= min(self._app.size, room):
            return f"size {header.size} is over the {self._app.size}-byte application area", None
        actual = _crc(staging.view(start + HEADER_SIZE, header.size), self._crc)
        if actual != header.crc:
            return (f"{self._crc} mismatch: header says 0x{header.crc:08x}, staged payload gives "
                    f"0x{actual:08x}"), None
        installed = self._record(board)
        if not self._allow_downgrade and installed.has_app and header.version < installed.version:
            return (f"downgrade from {version_of(installed.version)} to {version_of(header.version)} "
                    "is not allowed"), None
        return None, header

    def _install(self, board: Board, header: Stm32Header, log: list[str]) -> bool:
        staging = board.flashes[self._staging.device]
        app = board.flashes[self._app.device]
        header_flash = board.flashes[self._header.device]
        source = self._staging.address + self._image_offset + HEADER_SIZE
        header_flash.erase(self._header.address)
        app.erase_range(self._app.address, header.size)
        length = header.size + (-header.size % app.write_unit)
        for offset in range(0, length, _PIECE):
            take = min(_PIECE, length - offset)
            app.program(self._app.address + offset, staging.read(source + offset, take))
        # the CRC over what the application area now holds, as the seed computes it while copying
        actual = _crc(app.view(self._app.address, header.size), self._crc)
        if actual != header.crc:
            log.append(f"CRC after copy 0x{actual:08x} != 0x{header.crc:08x}")
            return False
        record = AppHeader(0, header.magic, header.size, header.crc, header.version)
        header_flash.program(self._header.address,
                             pad_to_unit(encode_app_header(record), header_flash.write_unit))
        return True

    def _record(self, board: Board) -> AppHeader:
        flash = board.flashes[self._header.device]
        return decode_app_header(flash.read(self._header.address, APP_HEADER_SIZE))

    def _jump(self, board: Board, log: list[str]) -> BootResult:
        record = self._record(board)
        app: NorFlash = board.flashes[self._app.device]
        if not record.has_app:
            return BootResult(BootAction.STAY, reason="no application header (magic "
                              f"0x{record.magic:08x}): staying in the bootloader", log=log)
        if not 0 < record.size <= self._app.size:
            return BootResult(BootAction.STAY, reason=f"application header size {record.size} is invalid",
                              log=log)
        actual = _crc(app.view(self._app.address, record.size), self._crc)
        if actual != record.crc:
            return BootResult(BootAction.STAY, reason=f"application CRC 0x{actual:08x} does not match its "
                              f"header (0x{record.crc:08x}): staying in the bootloader", log=log)
        return BootResult(BootAction.JUMP, self._app.address, "app",
                          f"application {version_of(record.version)} verified", log)

