"""One simulated device: flash parts, a bootloader, the OTA agent and the emulated core, driven the way
the hardware is — power on, the bootloader runs, the application starts and its agent takes over.

Each power-on or reset builds a fresh :class:`~mcuota.agent.core.Agent`: nothing but flash survives,
which is what makes resume-after-power-cut a property of the agent and not of the simulation. A power
cut (:class:`~mcuota.flash.PowerLoss`, raised by any flash operation once a fault plan is armed) ends
whatever was running; :meth:`SimDevice.survive` turns it into "power came back" and boots again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mcuota.agent.core import Agent, Clock, Outcome, Status
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.selftest import BannerSelfTest
from mcuota.agent.states import Callback
from mcuota.agent.storage import Storage, storage_for
from mcuota.agent.transport import Fetched, ReportKind, Transport
from mcuota.boot.board import Board
from mcuota.boot.registry import strategy_for
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.device.config import DeviceConfig
from mcuota.device.layouts import device_layout
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, PowerLoss
from mcuota.image.version import ImageVersion

T = TypeVar("T")
MAX_RESETS = 4
"""Resets in a row a watchdog gets to make a failing trial image give way (MCUboot reverts on the first)."""


class CrashingSelfTest(BannerSelfTest):
    """The banner self-test, with a switch that makes a trial image "crash" before it can confirm: the
    fault a fleet rehearsal injects to prove the bootloader reverts."""

    def __init__(self, board: Board) -> None:
        super().__init__(board)
        self.crash_version: ImageVersion | None = None
        """Firmware of this version hard-faults before it confirms (None: nothing crashes)."""
        self.crashes = 0

    def __call__(self, boot: BootResult, version: ImageVersion) -> bool:
        passed = super().__call__(boot, version)
        crash = self.crash_version
        if passed and crash is not None and crash.triple == version.triple:
            self.crashes += 1
            self.last = None
            return False
        return passed


@dataclass
class BootReport:
    """What one power-on or reset did: the bootloader's decision, and the agent's after it."""

    boot: BootResult
    outcome: Outcome | None = None
    running: str | None = None
    """The version the emulated core printed, None when nothing runs."""
    resets: int = 0


@dataclass
class Counters:
    power_cuts: int = 0
    boots: int = 0
    bytes_fetched: int = 0
    events: list[str] = field(default_factory=list)


class _Offline:
    """The link of a device configured without an update service: it boots, confirms and runs, and
    every check fails as an unreachable server would."""

    def __init__(self, serial: str) -> None:
        self.why = f"device {serial} has no link to an update service"

    def get_job_document(self) -> bytes:
        raise AgentError(AgentCode.CONNECTION_LOST, self.why)

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        raise AgentError(AgentCode.CONNECTION_LOST, self.why)

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        raise AgentError(AgentCode.CONNECTION_LOST, self.why)


class _Counted:
    """The agent's link, counting the image bytes that reach the device (what went over the air,
    including what a corrupted download or a power cut made it fetch again)."""

    def __init__(self, inner: Transport, counters: Counters) -> None:
        self.inner = inner
        self.counters = counters

    def get_job_document(self) -> bytes:
        return self.inner.get_job_document()

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        got = self.inner.fetch(file, offset, size)
        self.counters.bytes_fetched += len(got.data)
        return got

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        self.inner.report(file, kind, reason)


class SimDevice:
    def __init__(self, config: DeviceConfig, *, board: Board | None = None,
                 transport: Transport | Callable[[SimDevice], Transport] | None = None,
                 clock: Clock | None = None, callback: Callback | None = None) -> None:
        """``transport`` is the agent's link, or a factory called at every start (a link that says
        what the device runs, such as an MQTT request, is made anew after each boot)."""
        from mcuota.agent.memory import RecordingClock  # noqa: PLC0415 - the default modeled clock

        self.config = config
        self.layout = device_layout(config.layout, keys=config.keys)
        self.strategy: Strategy = strategy_for(self.layout)
        self.board = board if board is not None else Board(self.layout)
        if board is not None and board.layout != self.layout:
            raise UsageError(f"device {config.serial}: the saved flash is for another layout")
        self.storage: Storage = storage_for(self.board, self.strategy)
        self.transport = transport
        self.clock: Clock = clock if clock is not None else RecordingClock()
        self.callback = callback
        self.self_test = CrashingSelfTest(self.board)
        self.counters = Counters()
        self.running: str | None = None
        self.last_boot: BootResult | None = None

    # -- production
    def factory_install(self, release: ReleaseImage) -> BootReport:
        """Program the board as it leaves the factory with ``release``, then power it on."""
        self.strategy.factory_install(self.board, release)
        return self.power_on()

    def make_release(self, payload: bytes, version: ImageVersion, *, signer: object | None = None
                     ) -> ReleaseImage:
        """Raw firmware (linked for this layout) in this layout's image format."""
        return self.strategy.make_release(payload, version, signer=signer)

    # -- power
    def power_on(self) -> BootReport:
        self.board.power_cycle()
        return self._start()

    def reset(self) -> BootReport:
        self.board.warm_reset()
        return self._start()

    def _start(self) -> BootReport:
        resets = 0
        while True:
            self.counters.boots += 1
            boot = self.strategy.boot(self.board)
            self.last_boot = boot
            if boot.action is not BootAction.JUMP:
                self.running = None
                return BootReport(boot, None, None, resets)
            outcome = self.agent().on_boot(boot)
            self.running = self.self_test.last
            if outcome.status is not Status.TRIAL_FAILED or resets >= MAX_RESETS:
                return BootReport(boot, outcome, self.running, resets)
            # the trial image did not confirm: the watchdog resets, the bootloader decides again
            resets += 1
            self.board.warm_reset()

    def survive(self, run: Callable[[], T]) -> T | BootReport:
        """``run()``; when power fails during it, power on again (and again, if the plan cuts the
        recovery too) and return that boot's report instead."""
        try:
            return run()
        except PowerLoss:
            self.counters.power_cuts += 1
        while True:
            try:
                return self.power_on()
            except PowerLoss:
                self.counters.power_cuts += 1

    def arm(self, plan: FaultPlan) -> None:
        """Cut power at the plan's flash operations, counted from now."""
        self.board.domain.arm(plan)

    def disarm(self) -> None:
        self.board.domain.disarm()

    # -- the agent
    def agent(self) -> Agent:
        link = self.transport
        inner = _Offline(self.config.serial) if link is None else link(self) if callable(link) else link
        transport = _Counted(inner, self.counters)
        return Agent(self.config.agent_config(), transport, self.storage, clock=self.clock,
                     self_test=self.self_test, callback=self.callback)

    def check(self) -> Outcome:
        """One check for an update (download, verify, request); may raise PowerLoss."""
        return self.agent().check_for_update()

    def update(self) -> tuple[Outcome, BootReport | None]:
        """A check, and the reset it asks for; power cuts are the caller's (see :meth:`survive`)."""
        outcome = self.check()
        if outcome.status is Status.STAGED and outcome.reset_requested:
            return outcome, self.reset()
        return outcome, None

    # -- what it is
    def running_version(self) -> ImageVersion | None:
        try:
            return ImageVersion.parse(self.running) if self.running else None
        except Exception:
            return None

    @property
    def modeled_seconds(self) -> float:
        """Flash time spent on this device plus every wait the agent asked for."""
        waited = float(getattr(self.clock, "now", 0.0))
        return self.board.domain.elapsed.typical + waited

    def status(self) -> dict[str, object]:
        journal = self.storage.read_journal()
        boot = self.last_boot
        return {
            "serial": self.config.serial, "layout": self.layout.name, "board": self.config.board,
            "protocol": self.config.protocol.value,
            "running_version": self.running,
            "bootloader": None if boot is None else {"action": boot.action.value, "slot": boot.slot,
                                                      "reason": boot.reason},
            "staged_version": None if journal.version is None else str(journal.version),
            "download": {"total": journal.total, "steps_done": len(journal.steps),
                         "requested": journal.requested is not None, "done": journal.done,
                         "request_stands": self.storage.request_stands()},
            "slots": self.storage.describe(),
            "flash_ops": self.board.domain.op_count,
            "modeled_seconds": round(self.modeled_seconds, 3),
        }
