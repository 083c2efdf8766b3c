"""The fault plan: spec parsing, presets, reproducible per-device schedules and honoured rates."""

from __future__ import annotations

import math

import pytest

from mcuota.errors import UsageError
from mcuota.flash import FaultKind, PowerDomain, PowerLoss, new_flash
from mcuota.sim.faults import PRESETS, DeviceFaults, FaultPlan, NetFaultKind, Phase

EXAMPLE = ("power-download=0.1,power-install=0.05,torn=0.5,drop=0.05,corrupt=0.02,stall=0.02,stall-s=2,"
           "truncate=0.02,crash=0")


def within_sigmas(count: int, trials: int, rate: float, sigmas: float = 5.0) -> bool:
    """Whether ``count`` successes in ``trials`` fit ``rate`` (binomial, ``sigmas`` standard deviations)."""
    spread = sigmas * math.sqrt(trials * rate * (1 - rate)) + 1
    return abs(count - trials * rate) <= spread


def test_example_spec_parses_into_its_rates() -> None:
    plan = FaultPlan.parse(EXAMPLE)
    assert (plan.power_download, plan.power_install, plan.torn, plan.crash) == (0.1, 0.05, 0.5, 0.0)
    assert (plan.drop, plan.corrupt, plan.stall, plan.stall_s, plan.truncate) == (0.05, 0.02, 0.02, 2.0, 0.02)


@pytest.mark.parametrize("spec", [EXAMPLE, "none", "drop=1", "stall=0.3,stall-s=0.25", "torn=0",
                                  "power-install=0.123456789", *PRESETS])
def test_str_round_trips(spec: str) -> None:
    plan = FaultPlan.parse(spec)
    text = str(plan)
    assert FaultPlan.parse(text) == plan
    assert str(FaultPlan.parse(text)) == text


def test_str_of_an_empty_plan_is_the_none_preset() -> None:
    assert str(FaultPlan()) == "none"
    assert FaultPlan.parse("none") == FaultPlan()


def test_presets_grow_in_severity_and_demo_is_survivable() -> None:
    rates = ("power_download", "power_install", "crash", "drop", "corrupt", "stall", "truncate")
    light, default, heavy = (FaultPlan.parse(name) for name in ("light", "default", "heavy"))
    for rate in rates:
        assert getattr(light, rate) <= getattr(default, rate) <= getattr(heavy, rate), rate
    demo = FaultPlan.parse("demo")
    assert demo.crash == 0
    assert demo.is_survivable
    assert demo.power_download > 0
    assert demo.drop > 0
    assert not heavy.is_survivable


def test_items_after_a_preset_override_it() -> None:
    plan = FaultPlan.parse("default, drop = 0.2")
    assert plan.drop == 0.2
    assert plan.power_download == PRESETS["default"].power_download


@pytest.mark.parametrize(("spec", "named"), [
    ("dorp=0.1", "'dorp'"),
    ("drop=1.5", "drop = 1.5"),
    ("torn=-0.1", "torn = -0.1"),
    ("corrupt=abc", "'abc'"),
    ("crash=nan", "crash"),
    ("stall=inf", "stall"),
    ("stall-s=-1", "stall-s = -1"),
    ("stall-s=3601", "stall-s"),
    ("drop=0.1,drop=0.2", "'drop' given twice"),
    ("drop=0.5,corrupt=0.3,truncate=0.3", "drop + corrupt + stall + truncate = 1.1"),
    ("", "empty fault spec"),
    ("drop=0.1,,corrupt=0.1", "empty item"),
    ("drop=0.1,demo", "'demo' must come first"),
    ("medium", "'medium'"),
    ("=0.1", "''"),
])
def test_bad_specs_are_refused_naming_the_item(spec: str, named: str) -> None:
    with pytest.raises(UsageError) as info:
        FaultPlan.parse(spec)
    message = str(info.value)
    assert named in message
    assert "\n" not in message


def test_schedule_is_reproducible_and_independent_of_other_devices() -> None:
    plan = FaultPlan.parse("heavy")
    fleet = [plan.for_device(7, f"DEV{i:04d}") for i in range(200)]
    alone = plan.for_device(7, "DEV0123")
    assert alone == fleet[123]
    assert [alone.network(n) for n in range(1, 50)] == [fleet[123].network(n) for n in range(1, 50)]
    # asking out of order, or twice, gives the same answer
    assert [alone.network(n) for n in range(49, 0, -1)][::-1] == [alone.network(n) for n in range(1, 50)]


def test_another_seed_gives_another_schedule() -> None:
    plan = FaultPlan.parse("heavy")

    def schedule(seed: int) -> list[object]:
        devices = [plan.for_device(seed, f"DEV{i:04d}") for i in range(100)]
        return [(d.cut_download_at, d.cut_install_at, d.torn, d.crash, d.network(1), d.network(2))
                for d in devices]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_device_rates_are_honoured_over_a_fleet() -> None:
    plan = FaultPlan.parse("power-download=0.2,power-install=0.1,torn=0.3,crash=0.05")
    devices = [plan.for_device(1, f"SN-{i}", download_ops=40, install_ops=90) for i in range(4000)]
    downloads = [d.cut_download_at for d in devices if d.cut_download_at is not None]
    installs = [d.cut_install_at for d in devices if d.cut_install_at is not None]
    assert within_sigmas(len(downloads), 4000, 0.2)
    assert within_sigmas(len(installs), 4000, 0.1)
    assert within_sigmas(sum(d.crash for d in devices), 4000, 0.05)
    cut = [d.cut_download_at is not None or d.cut_install_at is not None for d in devices]
    torn = sum(d.torn for d, was_cut in zip(devices, cut, strict=True) if was_cut)
    assert within_sigmas(torn, sum(cut), 0.3)
    assert not any(d.torn for d, was_cut in zip(devices, cut, strict=True) if not was_cut)  # only cuts tear
    # cut positions spread over the whole phase, never outside it
    assert min(downloads) == 1
    assert max(downloads) == 40
    assert min(installs) >= 1
    assert max(installs) <= 90
    assert len(set(installs)) > 60


def test_request_rates_are_honoured_and_exclusive() -> None:
    plan = FaultPlan.parse("drop=0.1,corrupt=0.05,stall=0.05,stall-s=0.5,truncate=0.1")
    faults = [plan.for_device(3, f"SN-{i}").network(n) for i in range(400) for n in range(1, 51)]
    kinds = [f.kind for f in faults if f is not None]
    for kind, rate in ((NetFaultKind.DROP, 0.1), (NetFaultKind.CORRUPT, 0.05), (NetFaultKind.STALL, 0.05),
                       (NetFaultKind.TRUNCATE, 0.1)):
        assert within_sigmas(kinds.count(kind), len(faults), rate), kind
    stalls = [f for f in faults if f is not None and f.kind is NetFaultKind.STALL]
    assert {f.stall_s for f in stalls} == {0.5}
    corrupts = [f for f in faults if f is not None and f.kind is NetFaultKind.CORRUPT]
    assert all(0 < f.mask < 256 for f in corrupts)
    assert all(0 <= f.corrupt_offset(1000) < 1000 for f in corrupts)
    assert len({f.corrupt_offset(1000) for f in corrupts}) > len(corrupts) // 2  # positions vary


def test_no_faults_plan_schedules_nothing() -> None:
    device = FaultPlan.parse("none").for_device(1, "DEV")
    assert (device.cut_download_at, device.cut_install_at, device.torn, device.crash) == (None, None, False,
                                                                                          False)
    assert all(device.network(n) is None for n in range(1, 500))
    assert all(device.stream_cut(n, 1000) is None for n in range(1, 100))
    assert not device.power_plan(Phase.DOWNLOAD)
    assert not device.power_plan("install")


def test_stream_cuts_follow_the_drop_rate_within_the_window() -> None:
    plan = FaultPlan.parse("drop=0.25")
    cuts = [plan.for_device(5, f"SN-{i}").stream_cut(c, 500) for i in range(500) for c in (1, 2, 3)]
    hit = [c for c in cuts if c is not None]
    assert within_sigmas(len(hit), len(cuts), 0.25)
    assert min(hit) >= 1
    assert max(hit) <= 500


def test_bad_indices_are_refused() -> None:
    device = FaultPlan.parse("drop=1").for_device(1, "DEV")
    with pytest.raises(UsageError, match="numbered from 1"):
        device.network(0)
    with pytest.raises(UsageError, match="counted from 1"):
        device.stream_cut(0, 10)
    with pytest.raises(UsageError, match="at least one"):
        FaultPlan().for_device(1, "DEV", download_ops=0)


def _power_loss_op(device: DeviceFaults, phase: Phase) -> tuple[int, str]:
    """Arm the device's plan on a real flash model, erase and program until the power fails."""
    domain = PowerDomain()
    flash = new_flash("stm32f407", domain)
    domain.arm(device.power_plan(phase))
    base = flash.geometry.base

    def erase_and_program() -> None:
        for op in range(1, 200):
            if op % 2:
                flash.erase(base)
            else:
                flash.program(base, bytes([op & 0x7F]) * 16)

    with pytest.raises(PowerLoss) as info:
        erase_and_program()
    return info.value.op, info.value.fault


@pytest.mark.parametrize("torn", [0.0, 1.0])
def test_power_plan_cuts_the_flash_model_at_the_scheduled_operation(torn: float) -> None:
    plan = FaultPlan(power_download=1, power_install=1, torn=torn)
    device = plan.for_device(11, "DEV-P", download_ops=30, install_ops=50)
    assert device.cut_download_at is not None
    assert device.cut_install_at is not None
    expected = FaultKind.TORN.value if torn else FaultKind.CUT.value
    assert _power_loss_op(device, Phase.DOWNLOAD) == (device.cut_download_at, expected)
    assert _power_loss_op(device, Phase.INSTALL) == (device.cut_install_at, expected)
