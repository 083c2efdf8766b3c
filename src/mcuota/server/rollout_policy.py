"""When a staged rollout lets more devices in, and when it stops itself: pure decisions, no database.

A rollout moves through stages given as cumulative percentages of its *targets* (default 1, 10, 50,
100). Targets are the devices that match the rollout (board, product, every tag) and that version gating
lets it update, counted afresh each time, so a device registered later joins when it matches. Stage
``i`` admits up to ``cap(i) = max(1, ceil(pct_i * targets / 100))`` devices, first come first served:
the canary stage is never empty while there is anyone to update.

The next stage opens once the current one is full and at least ``advance_success_rate`` of its cap
have reported success. The rollout halts itself once ``min_attempts`` attempts have finished and the
share that failed (failure or reverted) reached ``halt_failure_rate``. Keeping this here, apart from the
storage that feeds it, lets its edge cases be tested exhaustively and keeps the service code about
transactions only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_STAGES = (1, 10, 50, 100)
STATES = ("active", "paused", "halted", "cancelled")
"""``active`` offers updates; ``paused`` (operator) and ``halted`` (failure threshold) offer nothing new
but keep their place; ``cancelled`` is final."""

_TRANSITIONS = {
    "pause": {"active": "paused", "paused": "paused"},
    "resume": {"paused": "active", "halted": "active", "active": "active"},
    "cancel": {"active": "cancelled", "paused": "cancelled", "halted": "cancelled", "cancelled": "cancelled"},
}


class PolicyError(ValueError):
    """Stages or thresholds that cannot describe a rollout; the message names the bad value."""


@dataclass(frozen=True)
class Policy:
    stages: tuple[int, ...] = DEFAULT_STAGES
    advance_success_rate: float = 0.9
    halt_failure_rate: float = 0.1
    min_attempts: int = 20

    def __post_init__(self) -> None:
        check_stages(self.stages)
        for name in ("advance_success_rate", "halt_failure_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise PolicyError(f"{name.replace('_', ' ')} {value} is not between 0 and 1")
        if self.min_attempts < 1:
            raise PolicyError(f"min attempts {self.min_attempts} must be at least 1")


@dataclass(frozen=True)
class Tally:
    """Attempts of one rollout so far."""

    admitted: int = 0
    succeeded: int = 0
    failed: int = 0
    """Failure and reverted reports."""

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class Decision:
    stage_index: int
    halt: bool
    reason: str


def check_stages(stages: Sequence[int]) -> tuple[int, ...]:
    values = tuple(stages)
    if not values:
        raise PolicyError("a rollout needs at least one stage")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise PolicyError(f"stage {value!r} is not a percentage between 1 and 100")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise PolicyError(f"stages {','.join(map(str, values))} must strictly increase")
    return values


def parse_stages(text: str) -> tuple[int, ...]:
    """``"1,10,50,100"`` → (1, 10, 50, 100)."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise PolicyError(f"stages {text!r} are not comma-separated whole percentages") from None
    return check_stages(values)


def stage_cap(stages: Sequence[int], stage_index: int, targets: int) -> int:
    """How many devices stage ``stage_index`` admits in total out of ``targets``."""
    if targets <= 0:
        return 0
    return max(1, math.ceil(stages[stage_index] * targets / 100))


def admits_every_target(stages: Sequence[int], stage_index: int) -> bool:
    """Whether stage ``stage_index`` is a 100 % stage. Its cap is then the number of targets, and a device
    asking to be admitted is a target not yet admitted, so the cap always has room for it: the caller
    can skip counting the targets (a scan of the fleet on every first check-in)."""
    return stages[stage_index] >= 100


def may_admit(policy: Policy, stage_index: int, targets: int, admitted: int) -> bool:
    return admitted < stage_cap(policy.stages, stage_index, targets)


def decide(policy: Policy, stage_index: int, targets: int, tally: Tally) -> Decision:
    """Where an active rollout stands after ``tally``: halted, or at which stage (possibly several
    stages further when small fleets make consecutive caps equal)."""
    finished = tally.finished
    if finished >= policy.min_attempts and tally.failed > 0:
        share = tally.failed / finished
        if share >= policy.halt_failure_rate:
            return Decision(stage_index, True,
                            f"failure share {share:.0%} ({tally.failed} of {finished} finished attempts) "
                            f"reached the halt threshold of {policy.halt_failure_rate:.0%}")
    index = stage_index
    reason = ""
    while index + 1 < len(policy.stages):
        cap = stage_cap(policy.stages, index, targets)
        if cap == 0 or tally.admitted < cap:
            reason = f"stage {index + 1} admitted {tally.admitted} of {cap}"
            break
        needed = math.ceil(policy.advance_success_rate * cap)
        if tally.succeeded < needed:
            reason = f"stage {index + 1} needs {needed} successes, has {tally.succeeded}"
            break
        index += 1
    else:
        reason = f"final stage ({policy.stages[-1]}%)"
    if index != stage_index:
        reason = f"advanced to stage {index + 1} ({policy.stages[index]}%): {tally.succeeded} successes"
    return Decision(index, False, reason)


def transition(state: str, action: str) -> str:
    """The state after an operator's ``pause`` / ``resume`` / ``cancel``; ValueError when not allowed."""
    allowed = _TRANSITIONS.get(action)
    if allowed is None:
        raise PolicyError(f"unknown rollout action {action!r}")
    if state not in allowed:
        raise PolicyError(f"cannot {action} a rollout that is {state}")
    return allowed[state]
