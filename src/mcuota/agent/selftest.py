"""The default self-test: boot what the bootloader jumped to on the emulated core and check that the
firmware announces the version it should on its console (the sample firmware's banner)."""

from __future__ import annotations

from mcuota.boot.board import Board
from mcuota.boot.strategy import BootResult
from mcuota.boot.verdict import emulate
from mcuota.image.version import ImageVersion


class BannerSelfTest:
    """``SelfTest`` for a board whose firmware runs on :mod:`mcuota.emu`."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.last: str | None = None

    def __call__(self, boot: BootResult, version: ImageVersion) -> bool:
        if boot.address is None:
            return False
        part = next((p for p in self.board.layout.partitions
                     if p.address <= boot.address < p.end),
                    None)
        if part is None:
            return False
        code = self.board.flashes[part.device].read(boot.address, part.end - boot.address)
        run = emulate(code, boot.address, self.board.layout)
        self.last = run.version
        if run.fault or run.version is None:
            return False
        try:
            return ImageVersion.parse(run.version).triple == version.triple
        except Exception:
            return False
