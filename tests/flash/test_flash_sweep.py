"""The sweep loop the simulators will run: snapshot, count, then cut or tear every op and recover."""

from __future__ import annotations

import pytest

from mcuota.flash import (
    NorFlash,
    PowerDomain,
    PowerLoss,
    W25QFlash,
    count_ops,
    new_flash,
    sweep_plans,
)

APP = 0x08020000
IMAGE = bytes((i * 31 + 7) & 0xFF for i in range(5000))


def stage_and_install(internal: NorFlash, external: W25QFlash) -> None:
    """Download to SPI NOR, then copy into internal flash: restartable from scratch, so always recovers."""
    external.erase_range(0, len(IMAGE))
    external.program(0, IMAGE)
    internal.erase_range(APP, len(IMAGE))
    padded = IMAGE + b"\xff" * (-len(IMAGE) % 4)
    for offset in range(0, len(padded), 1024):
        internal.program(APP + offset, external.read(offset, min(1024, len(padded) - offset)))


@pytest.mark.parametrize("torn", [False, True])
def test_exhaustive_single_fault_sweep_recovers_and_replays(torn: bool) -> None:
    domain = PowerDomain()
    internal = new_flash("stm32f407", domain)
    external = new_flash("w25q128", domain, name="spi")
    assert isinstance(external, W25QFlash)
    start = domain.snapshot()
    total = count_ops(domain, lambda: stage_and_install(internal, external))
    assert total == 2 + 20 + 1 + 5  # 2 SPI sectors, 20 page programs, 1 sector, 5 kB-pieces
    outcomes = []
    for plan in sweep_plans(total, torn=torn, seeds=[11]):
        domain.restore(start)
        domain.arm(plan)
        with pytest.raises(PowerLoss) as caught:
            stage_and_install(internal, external)
        assert caught.value.op == plan.faults[0][0]
        assert domain.ops_since_arm == plan.faults[0][0]
        outcomes.append((internal.read(APP, len(IMAGE)), external.read(0, len(IMAGE))))
        domain.power_on()
        stage_and_install(internal, external)
        assert internal.read(APP, len(IMAGE)) == IMAGE
    # replaying the same plan gives the same intermediate state, bit for bit
    domain.restore(start)
    domain.arm(sweep_plans(total, torn=torn, seeds=[11])[6])
    with pytest.raises(PowerLoss):
        stage_and_install(internal, external)
    assert (internal.read(APP, len(IMAGE)), external.read(0, len(IMAGE))) == outcomes[6]
