"""MCUboot overwrite-only: copy the secondary over the primary, no revert.

On a TEST or PERM request (both mean "install" here) the secondary image is checked first: header,
reset vector, hash and signature, a version (or security counter) at least the installed one's, and
that it fits the primary slot. A refused image is scrambled (trailer sectors first) and the installed
image keeps running, the reason in the log. An accepted one is installed: the primary sectors it needs
are erased, the image is copied in copy-buffer pieces, and then the secondary's trailer sectors and
first sector are erased, in that order.

Why every cut is safe: the request (the secondary's magic) stays in place until the copy is complete,
so a cut before that point leaves an intact, still valid secondary and a request for it; the next
boot simply installs again (the half-written primary is not a valid image, so it cannot block the
reinstall as a "downgrade"). Erasing the trailer sectors is the commit. If that erase is torn, either
the magic no longer reads good (no request: the complete primary boots) or it does and the image is
installed once more, which is idempotent, or it fails its check (its tail shared the torn sector) and
is scrambled, again leaving the complete primary. The last erase (the header sector) only keeps a
trailer-less rewrite of the slot from being taken for a request later.
"""

from __future__ import annotations

from mcuota.boot.board import Board
from mcuota.boot.mcuboot.base import McubootStrategy, Run
from mcuota.boot.mcuboot.decision import swap_type_for
from mcuota.boot.mcuboot.images import SlotImage, locate_image
from mcuota.boot.mcuboot.trailers import read_trailer
from mcuota.boot.strategy import BootResult, ReleaseImage
from mcuota.image.mcuboot import SwapType


class McubootOverwrite(McubootStrategy):
    name = "mcuboot-overwrite"
    mode = "overwrite"

    def confirm(self, board: Board) -> None:
        """Nothing to confirm: overwrite-only never reverts."""

    def committed(self, board: Board, release: ReleaseImage) -> bool | None:
        """From the moment the request for ``release`` is complete: every boot after it installs it."""
        data = self.image_bytes(release)
        for geo in (self.secondary, self.primary):
            flash = board.flashes[geo.device]
            if flash.read(geo.address, len(data)) != data:
                continue
            if geo is self.primary or read_trailer(flash, geo).magic_good:
                return True
        return False

    def boot(self, board: Board) -> BootResult:
        run = self.start(board)
        primary = self.trailer(run, "primary")
        secondary = self.trailer(run, "secondary")
        run.log.append(f"Secondary slot: {secondary.describe()}")
        swap = swap_type_for(primary.state, secondary.state)
        if swap in (SwapType.TEST, SwapType.PERM):
            run.log.append(f"Swap type: {swap.name.lower()} (overwrite-only installs either)")
            found = self._check(run)
            if isinstance(found, str):
                run.log.append(f"Image in the secondary slot is not valid: {found}; erasing it")
                self.scramble_secondary(run)
            else:
                self._install(run, found)
        return self.jump(run)

    def _check(self, run: Run) -> SlotImage | str:
        geo = self.secondary
        image = locate_image(run.flashes["secondary"], geo.address, geo.trailer_offset)
        if isinstance(image, str):
            return image
        if image.size > self.primary.trailer_offset:
            return (f"image of {image.size} bytes does not fit the primary slot "
                    f"({self.primary.trailer_offset} bytes before its trailer)")
        result, problem = self.secondary_problem(run, image)
        if problem is not None or result is None:
            return problem or "not valid"
        _, installed, _ = self.primary_image(run)
        return self.downgrade(result, installed) or image

    def _install(self, run: Run, image: SlotImage) -> None:
        size = self.round_up(image.size)
        run.log.append(f"Image upgrade secondary slot -> primary slot: {size} bytes")
        primary = self.primary
        self.erase_sectors(run.flashes["primary"], primary, primary.sectors_covering(0, size))
        self.copy(run, "secondary", 0, "primary", 0, length=size)
        secondary = self.secondary
        flash = run.flashes["secondary"]
        self.erase_sectors(flash, secondary, secondary.trailer_sectors)
        self.erase_sectors(flash, secondary, [0])
        run.log.append("Secondary slot trailer and header erased")
