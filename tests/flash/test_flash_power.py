"""Power cuts by operation number: counting, cut-before, torn erases and programs, shared rails."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuota.errors import McuotaError, UsageError
from mcuota.flash import (
    FaultKind,
    FaultPlan,
    FlashPart,
    Geometry,
    NorFlash,
    OpKind,
    OverwriteRule,
    PowerDomain,
    PowerLoss,
    PowerOff,
    TornStyle,
    count_ops,
    new_flash,
    sweep_plans,
)

KB = 1024


def update(flash: NorFlash, image: bytes, at: int) -> None:
    """A toy bootloader copy: erase the sectors, then program 256-byte pieces."""
    flash.erase_range(at, len(image))
    for offset in range(0, len(image), 256):
        flash.program(at + offset, image[offset:offset + 256])


IMAGE = bytes((i * 7 + 3) & 0xFF for i in range(3 * KB))


def test_count_ops_of_a_clean_run() -> None:
    domain = PowerDomain()
    flash = new_flash("stm32f103c8", domain)
    assert count_ops(domain, lambda: update(flash, IMAGE, 0x08003000)) == 3 + 12
    assert flash.read(0x08003000, len(IMAGE)) == IMAGE
    assert flash.ops == 15


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 9, 15])
def test_cut_before_n_runs_exactly_n_minus_one_ops(cut: int) -> None:
    domain = PowerDomain(log=True)
    flash = new_flash("stm32f103c8", domain)
    flash.program(0x08003000, b"\x00" * 16)  # before arming: not counted by the plan
    start = domain.snapshot()
    domain.arm(FaultPlan.cut_before(cut))
    with pytest.raises(PowerLoss) as caught:
        update(flash, IMAGE, 0x08003000)
    loss = caught.value
    assert (loss.fault, loss.op, loss.seq) == ("cut", cut, start.op_count + cut)
    assert domain.ops_since_arm == cut
    assert [r.outcome for r in domain.log or []][-1] == "cut"
    assert not domain.powered
    reference = PowerDomain()
    twin = new_flash("stm32f103c8", reference)
    twin.program(0x08003000, b"\x00" * 16)
    reference.arm(FaultPlan.cut_before(cut))
    with pytest.raises(PowerLoss):
        update(twin, IMAGE, 0x08003000)
    assert flash.read(0x08003000, 3 * KB) == twin.read(0x08003000, 3 * KB)
    if cut == 1:
        assert flash.read(0x08003000, 16) == b"\x00" * 16  # the erase never happened


def test_every_operation_raises_until_power_on() -> None:
    domain = PowerDomain(FaultPlan.cut_before(1))
    flash = new_flash("nrf52840", domain)
    with pytest.raises(PowerLoss):
        flash.erase(0)
    attempts: list[Callable[[], None]] = [
        lambda: flash.erase(0x1000),
        lambda: flash.program(0x1000, b"word"),
        lambda: flash.program(0x1001, b"misaligned, but power comes first"),
    ]
    for attempt in attempts:
        with pytest.raises(PowerOff, match="while power is off"):
            attempt()
    assert flash.read(0, 4) == b"\xff" * 4  # the simulator may still inspect the chip
    assert domain.ops_since_arm == 1
    domain.power_on()
    flash.program(0, b"ok!!")
    assert domain.ops_since_arm == 2


def test_power_loss_escapes_except_exception() -> None:
    domain = PowerDomain(FaultPlan.cut_before(1))
    flash = new_flash("nrf52840", domain)

    def careless_bootloader() -> str:
        try:
            flash.erase(0)
        except Exception:  # the point: firmware code cannot catch a power cut
            return "swallowed"
        return "ran"

    with pytest.raises(PowerLoss):
        careless_bootloader()
    assert not issubclass(PowerLoss, McuotaError)


def test_internal_and_external_flash_share_one_counter_and_plan() -> None:
    domain = PowerDomain(log=True)
    internal = new_flash("stm32f407", domain)
    external = new_flash("w25q128", domain, name="spi")
    internal.program(0x08000000, b"a")
    external.program(0x1000, b"b")
    internal.program(0x08000001, b"c")
    assert [(r.seq, r.device) for r in domain.log or []] == [(1, "stm32f407"), (2, "spi"), (3, "stm32f407")]
    domain.arm(FaultPlan.cut_before(2))
    external.erase(0x1000)
    with pytest.raises(PowerLoss) as caught:
        internal.erase(0x08000000)
    assert caught.value.device == "stm32f407"
    with pytest.raises(PowerOff):
        external.program(0x2000, b"x")
    domain.power_on()
    assert domain.op_count == 5
    with pytest.raises(UsageError, match="already on this power domain"):
        new_flash("w25q128", domain, name="spi")


def test_multi_fault_plan_hits_the_recovery_too() -> None:
    domain = PowerDomain()
    flash = new_flash("stm32f103c8", domain)
    domain.arm(FaultPlan(((2, FaultKind.CUT), (5, FaultKind.TORN)), seed=9))
    with pytest.raises(PowerLoss) as first:
        update(flash, IMAGE, 0x08003000)
    assert first.value.op == 2
    domain.power_on()
    with pytest.raises(PowerLoss) as second:
        update(flash, IMAGE, 0x08003000)
    assert (second.value.op, second.value.fault) == (5, "torn")
    domain.power_on()
    update(flash, IMAGE, 0x08003000)
    assert flash.read(0x08003000, len(IMAGE)) == IMAGE
    with pytest.raises(UsageError):
        FaultPlan.cut_before(0)
    with pytest.raises(UsageError):
        FaultPlan(((3, FaultKind.CUT), (3, FaultKind.TORN)))


def test_random_plans_are_reproducible() -> None:
    plan = FaultPlan.random(seed=42, within=100, count=3)
    assert plan == FaultPlan.random(seed=42, within=100, count=3)
    assert len(plan.faults) == 3
    assert all(1 <= op <= 100 for op, _ in plan.faults)
    assert len(sweep_plans(4)) == 4
    assert len(sweep_plans(4, torn=True, seeds=iter([1, 2]))) == 8


def torn_erase_result(seed: int) -> bytes:
    domain = PowerDomain()
    flash = new_flash("stm32f103c8", domain)
    flash.program(0x08000400, IMAGE[:1024])
    domain.arm(FaultPlan.torn_at(1, seed=seed))
    with pytest.raises(PowerLoss) as caught:
        flash.erase(0x08000400)
    assert caught.value.fault == "torn"
    assert flash.wear(0x08000400) == 1  # the cells were stressed even though the erase was cut
    return flash.read(0x08000400, 1024)


def test_torn_erase_is_random_bits_between_old_and_erased_and_deterministic() -> None:
    old = int.from_bytes(IMAGE[:1024], "little")
    results = {seed: torn_erase_result(seed) for seed in range(6)}
    for data in results.values():
        value = int.from_bytes(data, "little")
        assert value & old == old  # erasing only sets bits (erased 0xFF)
        assert value != old
        assert data != b"\xff" * 1024
    assert torn_erase_result(3) == results[3]
    assert len(set(results.values())) == len(results)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), erased=st.sampled_from([0xFF, 0x00]),
       unit=st.sampled_from([1, 2, 4, 8, 16]), style=st.sampled_from(list(TornStyle)),
       rule=st.sampled_from([OverwriteRule.FORBID, OverwriteRule.AND]),
       old=st.binary(min_size=64, max_size=64), new=st.binary(min_size=64, max_size=64))
def test_torn_program_lands_between_old_and_new(seed: int, erased: int, unit: int, style: TornStyle,  # noqa: PLR0917
                                                 rule: OverwriteRule, old: bytes, new: bytes) -> None:
    part = FlashPart("t", Geometry.uniform(2, 256), write_unit=unit, erased=erased, overwrite=rule)

    def run() -> bytes:
        domain = PowerDomain()
        flash = NorFlash(part, domain)
        if rule is OverwriteRule.AND:
            flash.program(0, old)
        start = flash.read(0, 64)
        domain.arm(FaultPlan.torn_at(1, seed=seed, style=style))
        with pytest.raises(PowerLoss):
            flash.program(0, new)
        torn = flash.read(0, 64)
        twin = NorFlash(part)
        twin.poke(0, start)
        twin.program(0, new)
        target = twin.read(0, 64)
        before, after, goal = (int.from_bytes(x, "little") for x in (start, torn, target))
        assert (before ^ after) & ~(before ^ goal) == 0  # only bits the program would flip changed
        return torn

    assert run() == run()  # same seed, same partial state


def test_torn_program_sequential_style_completes_a_prefix() -> None:
    domain = PowerDomain()
    flash = new_flash("stm32f103c8", domain)
    data = b"\x00" * 1024
    domain.arm(FaultPlan.torn_at(1, seed=5, style=TornStyle.SEQUENTIAL))
    with pytest.raises(PowerLoss):
        flash.program(0x08000000, data)
    torn = flash.read(0x08000000, 1024)
    done = len(torn) - len(torn.lstrip(b"\x00"))
    rest = torn[done - done % 2 + 2:]
    assert rest == b"\xff" * len(rest)  # after the half-word being written, nothing took


def test_op_log_is_off_by_default_and_records_outcomes() -> None:
    quiet = PowerDomain()
    assert quiet.log is None
    domain = PowerDomain(log=True)
    flash = new_flash("nrf52840", domain)
    flash.program(0x1000, b"abcd")
    domain.arm(FaultPlan.torn_at(2, seed=1))
    flash.erase(0)
    with pytest.raises(PowerLoss):
        flash.erase(0x1000)
    log = domain.log or []
    assert [(r.kind, r.address, r.length, r.outcome) for r in log] == [
        (OpKind.PROGRAM, 0x1000, 4, "done"), (OpKind.ERASE, 0, 4096, "done"),
        (OpKind.ERASE, 0x1000, 4096, "torn")]


def test_restore_puts_counter_back_powers_on_and_disarms() -> None:
    domain = PowerDomain()
    flash = new_flash("stm32f407", domain)
    start = domain.snapshot()
    domain.arm(FaultPlan.cut_before(1))
    with pytest.raises(PowerLoss):
        flash.program(0x08000000, b"x")
    domain.restore(start)
    assert domain.powered
    assert domain.op_count == 0
    assert not domain.plan
    flash.program(0x08000000, b"x")
    other = PowerDomain()
    new_flash("nrf52840", other)
    with pytest.raises(UsageError, match="snapshot holds devices"):
        other.restore(start)


def test_cut_power_between_operations() -> None:
    domain = PowerDomain()
    flash = new_flash("stm32f103c8", domain)
    domain.cut_power()
    with pytest.raises(PowerOff):
        flash.erase(0x08000000)
    domain.power_on()
    flash.erase(0x08000000)
