"""The stage and halt decisions of a rollout, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.server.rollout_policy import (
    Policy,
    PolicyError,
    Tally,
    decide,
    may_admit,
    parse_stages,
    stage_cap,
    transition,
)

DEFAULT = Policy()


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULT.stages == (1, 10, 50, 100)
    assert (DEFAULT.halt_failure_rate, DEFAULT.min_attempts) == (0.1, 20)


@pytest.mark.parametrize(("stages", "index", "targets", "cap"), [
    ((1, 10, 50, 100), 0, 1000, 10),
    ((1, 10, 50, 100), 1, 1000, 100),
    ((1, 10, 50, 100), 3, 1000, 1000),
    ((1, 10, 50, 100), 0, 5, 1),      # the canary stage is never empty
    ((1, 10, 50, 100), 2, 5, 3),      # rounded up
    ((1, 10, 50, 100), 0, 0, 0),      # nobody to update
])
def test_stage_cap(stages: tuple[int, ...], index: int, targets: int, cap: int) -> None:
    assert stage_cap(stages, index, targets) == cap


def test_admission_stops_at_the_cap() -> None:
    assert may_admit(DEFAULT, 0, 1000, 9)
    assert not may_admit(DEFAULT, 0, 1000, 10)
    assert not may_admit(DEFAULT, 0, 0, 0)


def test_stays_while_the_stage_is_not_full() -> None:
    decision = decide(DEFAULT, 0, 1000, Tally(admitted=5, succeeded=5))
    assert (decision.stage_index, decision.halt) == (0, False)


def test_stays_until_enough_successes() -> None:
    assert decide(DEFAULT, 1, 1000, Tally(admitted=100, succeeded=89)).stage_index == 1
    assert decide(DEFAULT, 1, 1000, Tally(admitted=100, succeeded=90)).stage_index == 2


def test_advances_several_stages_when_caps_coincide() -> None:
    # 3 targets: caps are 1, 1, 2, 3, so one success opens stage 3 directly
    decision = decide(DEFAULT, 0, 3, Tally(admitted=1, succeeded=1))
    assert decision.stage_index == 2
    assert "advanced to stage 3" in decision.reason


def test_never_beyond_the_last_stage() -> None:
    assert decide(DEFAULT, 3, 10, Tally(admitted=10, succeeded=10)).stage_index == 3


def test_halt_needs_min_attempts() -> None:
    policy = Policy(min_attempts=20, halt_failure_rate=0.1)
    assert not decide(policy, 2, 1000, Tally(admitted=19, succeeded=0, failed=19)).halt
    assert decide(policy, 2, 1000, Tally(admitted=20, succeeded=18, failed=2)).halt
    assert not decide(policy, 2, 1000, Tally(admitted=20, succeeded=19, failed=1)).halt


def test_halt_reason_names_the_share() -> None:
    decision = decide(Policy(min_attempts=4, halt_failure_rate=0.5), 0, 100, Tally(4, 2, 2))
    assert decision.halt
    assert "50%" in decision.reason
    assert "2 of 4" in decision.reason


def test_zero_rate_halts_on_the_first_failure_only() -> None:
    policy = Policy(min_attempts=1, halt_failure_rate=0.0)
    assert not decide(policy, 0, 10, Tally(1, 1, 0)).halt
    assert decide(policy, 0, 10, Tally(2, 1, 1)).halt


@pytest.mark.parametrize(("text", "message"), [
    ("", "at least one stage"), ("10,5", "strictly increase"), ("0,100", "between 1 and 100"),
    ("1,x", "comma-separated"), ("50,101", "between 1 and 100"), ("10,10", "strictly increase"),
])
def test_bad_stages(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_stages(text)


def test_bad_thresholds() -> None:
    with pytest.raises(PolicyError, match="halt failure rate"):
        Policy(halt_failure_rate=1.5)
    with pytest.raises(PolicyError, match="min attempts"):
        Policy(min_attempts=0)


def test_parse_stages() -> None:
    assert parse_stages("1, 10,50 ,100") == (1, 10, 50, 100)
    assert parse_stages("100") == (100,)


@pytest.mark.parametrize(("state", "action", "after"), [
    ("active", "pause", "paused"), ("paused", "resume", "active"), ("halted", "resume", "active"),
    ("active", "cancel", "cancelled"), ("halted", "cancel", "cancelled"), ("paused", "pause", "paused"),
])
def test_transitions(state: str, action: str, after: str) -> None:
    assert transition(state, action) == after


@pytest.mark.parametrize(("state", "action"), [("cancelled", "resume"), ("cancelled", "pause"),
                                               ("halted", "pause"), ("active", "explode")])
def test_refused_transitions(state: str, action: str) -> None:
    with pytest.raises(PolicyError):
        transition(state, action)


@given(targets=st.integers(0, 5000), admitted=st.integers(0, 5000), succeeded=st.integers(0, 5000),
       failed=st.integers(0, 5000), index=st.integers(0, 3))
def test_decisions_are_sane(targets: int, admitted: int, succeeded: int, failed: int, index: int) -> None:
    tally = Tally(admitted, min(succeeded, admitted), min(failed, max(0, admitted - succeeded)))
    decision = decide(DEFAULT, index, targets, tally)
    assert index <= decision.stage_index <= 3
    if decision.halt:
        assert decision.stage_index == index
        assert tally.finished >= DEFAULT.min_attempts
    if decision.stage_index > index:
        # every stage passed was full and had enough successes
        for passed in range(index, decision.stage_index):
            cap = stage_cap(DEFAULT.stages, passed, targets)
            assert tally.admitted >= cap
            assert tally.succeeded >= 0.9 * cap
