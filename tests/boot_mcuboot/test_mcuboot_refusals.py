"""What the MCUboot strategies refuse to install, on every mode and board: a tampered image, one signed
by a key the bootloader does not trust, a downgrade (by version or security counter), an unsigned
or non-bootable image, one linked for another address. The running firmware keeps running, the reason
is in the log and the secondary slot is scrambled, as bootutil does."""

from __future__ import annotations

import dataclasses

import pytest
from mcuboot_helpers import BOARDS, MODES, SWAP_MODES, Device, device, layout_of, mcuboot, release

from mcuota.boot.mcuboot import development_key
from mcuota.boot.strategy import BootAction
from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome
from mcuota.errors import CapacityError
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import ImageFlag, build_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path

CASES = [(mode, board) for mode in MODES for board in BOARDS]


def refused(dev: Device, words: str) -> None:
    """The staged update was refused: old image running, reason logged, secondary slot scrambled."""
    result = dev.boot()
    assert result.action is BootAction.JUMP
    assert dev.outcome(result) is Outcome.OLD
    assert any(words in line for line in result.log), result.log
    geo = dev.strategy.secondary
    assert dev.board.flashes[geo.device].is_erased(geo.address, geo.size)
    again = dev.boot()
    assert dev.outcome(again) is Outcome.OLD


def staged_offset(dev: Device) -> int:
    return dev.strategy.secondary.address + dev.strategy.staging_offset


@pytest.mark.parametrize(("mode", "board"), CASES)
def test_tampered_image(mode: str, board: str) -> None:
    dev = device(layout_of(mode, board))
    dev.strategy.stage(dev.board, dev.new)
    flash = dev.board.flashes[dev.strategy.secondary.device]
    address = staged_offset(dev) + 0x400
    flash.poke(address, bytes((flash.read(address, 1)[0] ^ 0x01,)))
    refused(dev, "does not match")


@pytest.mark.parametrize(("mode", "board"), CASES)
def test_image_signed_with_an_untrusted_key(mode: str, board: str) -> None:
    dev = device(layout_of(mode, board))
    stranger = release(dev.strategy, "2.0.0", signer=generate_private_key("ed25519"))
    dev.strategy.stage(dev.board, stranger)
    refused(dev, "not trusted")


@pytest.mark.parametrize(("mode", "board"), CASES)
def test_downgrade(mode: str, board: str) -> None:
    dev = device(layout_of(mode, board), "2.0.0", "1.1.0")
    dev.strategy.stage(dev.board, dev.new)
    refused(dev, "downgrade refused")


@pytest.mark.parametrize("mode", MODES)
def test_downgrade_allowed_when_prevention_is_off(mode: str) -> None:
    base = layout_of(mode, "f407")
    layout = dataclasses.replace(base, options={**base.options, "downgrade_prevention": False})
    dev = device(layout, "2.0.0", "1.1.0")
    assert dev.outcome(dev.update()) is Outcome.NEW


@pytest.mark.parametrize("mode", MODES)
def test_security_counter_downgrade(mode: str) -> None:
    """By security counter: a newer version with a lower counter is refused, a higher one is taken."""
    base = layout_of(mode, "nrf52840")
    layout = dataclasses.replace(base, options={**base.options, "downgrade_prevention": "security-counter"})
    dev = device(layout)
    strategy = dev.strategy
    payload = sample_path(layout.sample_target, "2.0.0").read_bytes()

    def signed(version: str, counter: int) -> bytes:
        return build_image(payload, version=ImageVersion.parse(version), header_size=0x200, pad_header=True,
                           key=development_key("ed25519"), security_counter=counter).data

    installed = strategy.parse_release(signed("1.5.0", 7))
    assert installed is not None
    dev.strategy.stage(dev.board, installed)
    dev.settle()
    lower = strategy.parse_release(signed("3.0.0", 6))
    assert lower is not None
    dev.strategy.stage(dev.board, lower)
    result = dev.boot()
    assert any("security counter 6 is lower than the installed image's 7" in line for line in result.log)
    higher = strategy.parse_release(signed("1.0.0", 8))
    assert higher is not None
    dev.strategy.stage(dev.board, higher)
    dev.settle()
    assert dev.board.read("primary", 0, 32)[20:22] == bytes((1, 0))  # 1.0.0 now installed


@pytest.mark.parametrize("mode", MODES)
def test_unsigned_image(mode: str) -> None:
    dev = device(layout_of(mode, "psoc6"))
    payload = sample_path(dev.strategy.layout.sample_target, "2.0.0").read_bytes()
    unsigned = dev.strategy.parse_release(build_image(
        payload, version=ImageVersion(2), header_size=0x400, pad_header=True).data)
    assert unsigned is not None
    dev.strategy.stage(dev.board, unsigned)
    refused(dev, "not signed")


@pytest.mark.parametrize("mode", MODES)
def test_hash_only_layout_installs_unsigned_images(mode: str) -> None:
    base = layout_of(mode, "f407")
    layout = dataclasses.replace(base, options={**base.options, "signature": "none"})
    dev = device(layout)
    assert dev.outcome(dev.update()) is Outcome.NEW


@pytest.mark.parametrize("mode", MODES)
def test_non_bootable_image(mode: str) -> None:
    dev = device(layout_of(mode, "f407"))
    payload = sample_path("mcuboot-f407", "2.0.0").read_bytes()
    built = build_image(payload, version=ImageVersion(2), header_size=0x200, pad_header=True,
                        key=development_key("ed25519"), non_bootable=True)
    image = dev.strategy.parse_release(built.data)
    assert image is not None
    assert image.data[16] & ImageFlag.NON_BOOTABLE
    dev.strategy.stage(dev.board, image)
    refused(dev, "non-bootable")


@pytest.mark.parametrize("mode", MODES)
def test_image_linked_for_another_address(mode: str) -> None:
    """bootutil's MCUBOOT_VERIFY_IMG_ADDRESS: an application linked elsewhere is not installed."""
    dev = device(layout_of(mode, "f407"))
    other = dev.strategy.make_release(sample_path("gizwits-f103", "2.0.0").read_bytes(), ImageVersion(2))
    dev.strategy.stage(dev.board, other)
    refused(dev, "linked for another address")


@pytest.mark.parametrize("mode", MODES)
def test_image_larger_than_the_slot_is_not_even_staged(mode: str) -> None:
    dev = device(layout_of(mode, "nrf52840"))
    huge = dev.strategy.make_release(bytes(dev.strategy.secondary.size), ImageVersion(9))
    ops = dev.board.domain.op_count
    with pytest.raises(CapacityError, match="does not fit the secondary slot"):
        dev.strategy.stage(dev.board, huge)
    assert dev.board.domain.op_count == ops


@pytest.mark.parametrize("mode", MODES)
def test_refusal_sweep(mode: str) -> None:
    """A refused update, every operation cut and torn: the old image runs at every point."""
    layout = layout_of(mode, "f407")
    strategy = mcuboot(layout)
    stranger = release(strategy, "2.0.0", signer=generate_private_key("ed25519"))
    report = sweep(layout, release(strategy, "1.0.0"), stranger, torn=True, strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.OLD
    assert report.outcomes["new"] == 0
    assert report.refused is not None
    assert "not trusted" in report.refused


@pytest.mark.parametrize("mode", SWAP_MODES)
def test_revert_with_nothing_to_revert_to(mode: str) -> None:
    """The test image runs unconfirmed and the application has already erased the secondary slot (a
    new download started): nothing valid to go back to, so the running image is kept and marked ok."""
    dev = device(layout_of(mode, "nrf52840"))
    dev.strategy.stage(dev.board, dev.new)
    assert dev.outcome(dev.boot()) is Outcome.NEW
    geo = dev.strategy.secondary
    flash = dev.board.flashes[geo.device]
    for sector in range(geo.count):
        flash.erase_range(geo.sector_address(sector), geo.sector)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.NEW
    assert any("Cannot revert" in line for line in result.log)
    ops = dev.board.domain.op_count
    assert dev.outcome(dev.boot()) is Outcome.NEW
    assert dev.board.domain.op_count == ops
