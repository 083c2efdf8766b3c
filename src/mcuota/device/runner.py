"""One simulated device living in real time, as ``mcuota sim device run`` runs it: power on, then
check for an update every interval, reset into the bootloader when the agent asks, and save the
flash after every step so that a killed process is a device that lost power."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mcuota.agent.core import Outcome, Status
from mcuota.device.device import BootReport, SimDevice


@dataclass(frozen=True)
class RunEvent:
    what: str
    detail: str
    running: str | None


def run_device(device: SimDevice, *, interval: float | None, checks: int | None = None,
               until: str | None = None,
               save: Callable[[], None] = lambda: None, on_event: Callable[[RunEvent], None] = lambda e: None,
               sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Run until ``checks`` checks were made or the device runs version ``until``; the running version.
    ``interval`` None waits as the agent's settings say (initial check, next check, retry with backoff)."""
    def tell(what: str, detail: str) -> None:
        on_event(RunEvent(what, detail, device.running))

    boot = device.power_on()
    save()
    tell("boot", _boot_text(boot))
    made = failures = 0
    if interval is None:
        sleep(device.agent().next_check_in(None))
    while checks is None or made < checks:
        if until is not None and device.running == until:
            break
        made += 1
        outcome = device.check()
        save()
        tell("check", _outcome_text(outcome))
        if outcome.status is Status.STAGED and outcome.reset_requested:
            boot = device.reset()
            save()
            tell("reset", _boot_text(boot))
            continue
        if checks is not None and made >= checks:
            break
        if until is not None and device.running == until:
            break
        failures = failures + 1 if outcome.status is Status.FAILED else 0
        sleep(interval if interval is not None else device.agent().next_check_in(outcome, failures))
    return device.running


def _boot_text(boot: BootReport) -> str:
    if boot.outcome is None:
        return f"bootloader stays: {boot.boot.reason}"
    text = f"runs {boot.running or 'nothing'} ({boot.outcome.status.value})"
    return f"{text}: {boot.outcome.reason}" if boot.outcome.reason else text


def _outcome_text(outcome: Outcome) -> str:
    if outcome.status is Status.STAGED:
        resumed = f", resumed at byte {outcome.resumed_from}" if outcome.resumed_from else ""
        return f"staged {outcome.version} ({outcome.bytes_fetched} bytes fetched{resumed}); resetting"
    if outcome.status is Status.NO_UPDATE:
        return "no update"
    return f"{outcome.status.value}: {outcome.reason}"
