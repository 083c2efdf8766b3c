"""The contract every bootloader strategy implements: the bootloader itself, and the application-side
calls of the same system (stage an update and request it, confirm the running image).

A strategy touches flash only through the board's :class:`~mcuota.flash.NorFlash` devices. Any
operation may raise :class:`~mcuota.flash.PowerLoss` (a ``BaseException``): strategies never catch it,
so a sweep can cut power anywhere and then call :meth:`Strategy.boot` again, as hardware would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

from mcuota.boot.board import Board
from mcuota.boot.layout import Layout
from mcuota.image.version import ImageVersion


class BootAction(StrEnum):
    JUMP = "jump"
    """The bootloader hands over to an application at ``BootResult.address``."""
    STAY = "stay"
    """The bootloader keeps control (DFU / recovery mode, or no valid application): the board does not
    run firmware. Whether that is a brick depends on whether the mode can still take an update."""


@dataclass
class BootResult:
    action: BootAction
    address: int | None = None
    slot: str | None = None
    reason: str = ""
    log: list[str] = field(default_factory=list)
    recoverable: bool = False
    """For STAY: the bootloader sits in a mode that can still receive firmware (dapboot DFU, Interrupt
    loader DFU); a sweep counts that as recoverable, not as bricked."""


@dataclass(frozen=True)
class ReleaseImage:
    """A firmware release as a strategy stages it: ``data`` in the strategy's image format, the raw
    application ``payload`` it carries (what must end up at the execution address) and its version."""

    data: bytes
    payload: bytes
    version: ImageVersion


class Strategy(ABC):
    """One bootloader system on one layout; subclasses are found by name in :mod:`mcuota.boot.registry`."""

    name: str = ""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # -- images ---------------------------------------------------------------------------------------
    @abstractmethod
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        """Wrap a raw application (linked for ``layout.app_address``) in this system's image format."""

    # -- factory ----------------------------------------------------------------------------------------
    @abstractmethod
    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        """Program the board as it leaves production with ``release`` installed (no operations counted)."""

    # -- application side -------------------------------------------------------------------------------
    @abstractmethod
    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """What the running application (its OTA agent) does: write the update where the bootloader looks
        and request it. ``permanent`` asks for no revert (MCUboot PERM); other systems ignore it."""

    def confirm(self, board: Board) -> None:  # noqa: B027 - optional hook, a no-op by default
        """The running application declares itself good; a no-op where the system has no revert.
        Applications confirm on every boot, so this must not touch flash when already confirmed."""

    def committed(self, board: Board, release: ReleaseImage) -> bool | None:
        """Whether the update to ``release`` is past its point of no return on this board: from here
        on only ``release`` may run after any power cut (for Gizwits: the FLAG record is pending).

        A sweep evaluates it on the flash state between two operations of a clean update; it must be
        false before the update starts and stay true once it turned true. ``None`` (the default)
        leaves the sweep to infer the commit point from where recoveries start ending in the new
        image."""
        return None

    def parse_release(self, data: bytes) -> ReleaseImage | None:
        """``data`` as an image already built in this system's format, or ``None`` when it is not one
        (then it is raw firmware for :meth:`make_release`)."""
        return None

    # -- bootloader -------------------------------------------------------------------------------------
    @abstractmethod
    def boot(self, board: Board) -> BootResult:
        """Run the bootloader from reset until it jumps or settles; may raise PowerLoss at any operation."""

    @property
    def can_revert(self) -> bool:
        """Whether an image that never confirms is rolled back on a later boot (the watchdog model)."""
        return False
