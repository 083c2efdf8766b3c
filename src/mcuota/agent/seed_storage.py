"""Staging for the seed bootloaders that cannot revert: the agent writes the download where the seed's
own application side would (Gizwits APP_BAK, the seed-001 staging area) and then sets the request the
way the seed does (the FLAG record, the request word), so the unmodified bootloader installs it.

Neither format carries a signature, so what the agent checks before requesting is the job document's
SHA-256 of the file (the job arrived over the authenticated channel) plus the format's own check: the
seed-001 header's CRC and version; for Gizwits the vectors of a Cortex-M application (the MD5 the FLAG
record needs is computed from what is in APP_BAK, so the bootloader's MD5 check guards the copy).
Gizwits images carry no version at all: the one the device runs is read from its console banner on
the emulated core, as the Wi-Fi module learns it from the MCU's device info.
"""

from __future__ import annotations

import hashlib
import struct

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.storage import Storage
from mcuota.boot.board import Board
from mcuota.boot.flashops import stm32_sp_plausible
from mcuota.boot.gizwits import GizwitsStrategy
from mcuota.boot.stm32_header import Stm32HeaderStrategy, version_of
from mcuota.boot.verdict import emulate
from mcuota.errors import FormatError
from mcuota.image.stm32_header import (
    HEADER_SIZE,
    Stm32Header,
    looks_like,
    parse_stm32_image,
    verify_stm32_image,
)
from mcuota.image.version import ImageVersion


class GizwitsStorage(Storage):
    """APP_BAK of the Gizwits layout; the request is the FLAG record {0xEEEE, size, MD5}."""

    def __init__(self, board: Board, strategy: GizwitsStrategy, *, journal: str = "agent") -> None:
        self.strategy = strategy
        bak = strategy.app_bak
        super().__init__(board, board.flashes[bak.device], bak.address, bak.size, journal=journal)

    def _regions(self, total: int) -> list[tuple[int, int]]:
        return [(self.start, total)]

    def check_format(self, head: bytes) -> None:
        if len(head) < 8:
            raise AgentError(AgentCode.WRONG_FORMAT, f"gizwits: {len(head)} bytes cannot hold a vector table")
        sp, reset = struct.unpack_from("<II", head)
        if not (stm32_sp_plausible(sp) and reset & 1 and reset & 0xFF000000 == 0x08000000):
            raise AgentError(AgentCode.WRONG_FORMAT, f"gizwits: not a Cortex-M application (initial SP "
                             f"0x{sp:08x}, reset vector 0x{reset:08x})")

    def _verify(self, image: bytes, version: ImageVersion) -> None:
        self.check_format(image[:8])

    def _commit(self, total: int) -> None:
        md5 = hashlib.md5(self.flash.view(self.start, total), usedforsecurity=False).digest()
        self.strategy.request_staged(self.board, total, md5)

    def request_stands(self) -> bool:
        flag = self.strategy.pending_request(self.board)
        return flag is not None and flag.rom_size == self.read_journal().total

    def running_version(self) -> ImageVersion | None:
        app = self.strategy.layout.partition("app")
        run = emulate(self.board.flashes[app.device].read(app.address, app.size), app.address,
                      self.strategy.layout)
        if run.fault or run.version is None:
            return None
        try:
            return ImageVersion.parse(run.version)
        except Exception:   # a banner that is not a version: the device cannot say what it runs
            return None


class Stm32HeaderStorage(Storage):
    """The seed-001 staging area: the OTA image (16-byte header + payload) behind the request word."""

    def __init__(self, board: Board, strategy: Stm32HeaderStrategy, *, journal: str = "agent") -> None:
        self.strategy = strategy
        staging = strategy.staging
        super().__init__(board, board.flashes[staging.device], staging.address + strategy.image_offset,
                         staging.size - strategy.image_offset, journal=journal)

    def _regions(self, total: int) -> list[tuple[int, int]]:
        staging = self.strategy.staging
        return [(staging.address, self.strategy.image_offset + total)]

    def _controls(self) -> list[tuple[int, int]]:
        return [(self.strategy.staging.address, self.strategy.image_offset)]

    def check_format(self, head: bytes) -> None:
        if not looks_like(head):
            raise AgentError(AgentCode.WRONG_FORMAT, "not a seed-001 OTA image (no 0xABCDEFAB magic)")

    def version_in(self, head: bytes) -> ImageVersion | None:
        return version_of(Stm32Header.unpack(head[:HEADER_SIZE]).version)

    def _verify(self, image: bytes, version: ImageVersion) -> None:
        try:
            result = verify_stm32_image(image, crc=self.strategy.crc)
            carried = version_of(parse_stm32_image(image).header.version)
        except FormatError as exc:
            raise AgentError(AgentCode.VERIFY, str(exc)) from None
        if not result.ok:
            raise AgentError(AgentCode.VERIFY, f"seed-001 image fails its {result.variant}: {result.reason}")
        if carried.triple != version.triple:
            raise AgentError(AgentCode.VERIFY, f"image carries version {carried}, the job offered {version}")

    def _commit(self, total: int) -> None:
        self.strategy.request_staged(self.board)

    def request_stands(self) -> bool:
        return self.strategy.request_pending(self.board)

    def running_version(self) -> ImageVersion | None:
        return self.strategy.installed_version(self.board)
