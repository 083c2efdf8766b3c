"""Images signed by ``imgtool sign --pad`` / ``--confirm`` (2.5, run as a subprocess), written byte for
byte into the secondary slot as a programmer or mcumgr upload would, boot on every mode and board
exactly as mcuota's own do."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from mcuboot_helpers import BOARDS, MODES, Device, device, layout_of, mcuboot, release

from conftest import require_tool
from mcuota.boot.board import Board
from mcuota.boot.mcuboot import McubootStrategy, development_key
from mcuota.boot.verdict import Outcome
from mcuota.image.keys import load_private_key_file
from mcuota.image.mcuboot import SwapType, decode_trailer
from mcuota.samples import sample_path

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def imgtool() -> str:
    return require_tool("imgtool")


@pytest.fixture(scope="module")
def dev_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "mcuota-dev-ed25519.pem"
    path.write_bytes(development_key("ed25519").pem())
    return path


def imgtool_sign(imgtool: str, strategy: McubootStrategy, key: Path, version: str, out: Path,
                 *flags: str) -> bytes:
    layout = strategy.layout
    slot = strategy.secondary.size - strategy.staging_offset
    args = [imgtool, "sign", "--key", str(key), "--version", version, "--header-size",
            hex(strategy.options.header_size), "--pad-header", "--slot-size", hex(slot), "--align",
            str(strategy.options.align), "--max-sectors", str(strategy.options.max_sectors), *flags,
            str(sample_path(layout.sample_target, version)), str(out)]
    if strategy.mode == "overwrite":
        args.insert(2, "--overwrite-only")
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def program_secondary(dev: Device, data: bytes) -> None:
    """Write a padded imgtool output into the secondary slot as it is (erasing first)."""
    strategy = dev.strategy
    geo = strategy.secondary
    flash = dev.board.flashes[geo.device]
    start = strategy.staging_offset
    strategy.erase_sectors(flash, geo, range(geo.count))
    strategy.copy_bytes(data, flash, geo.address + start)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("mode", MODES)
def test_padded_test_image_boots(imgtool: str, dev_key: Path, tmp_path: Path, mode: str, board: str) -> None:
    dev = device(layout_of(mode, board))
    data = imgtool_sign(imgtool, dev.strategy, dev_key, "2.0.0", tmp_path / "app.signed.bin", "--pad")
    assert len(data) == dev.strategy.secondary.size - dev.strategy.staging_offset
    # the same image as mcuota's own (Ed25519 signatures are deterministic), only padded
    assert dev.strategy.parse_release(data) == dev.new
    program_secondary(dev, data)
    first = dev.boot()
    assert dev.outcome(first) is Outcome.NEW
    assert dev.version_printed(first) == "2.0.0"
    if mode != "overwrite":  # a test swap: not confirmed, so the next reset reverts it
        assert dev.outcome(dev.boot()) is Outcome.OLD


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("mode", MODES)
def test_confirmed_image_stays(imgtool: str, dev_key: Path, tmp_path: Path, mode: str, board: str) -> None:
    dev = device(layout_of(mode, board))
    data = imgtool_sign(imgtool, dev.strategy, dev_key, "2.0.0", tmp_path / "app.signed.bin", "--confirm")
    program_secondary(dev, data)
    for _ in range(3):
        result = dev.boot()
        assert dev.outcome(result) is Outcome.NEW
    assert dev.version_printed(result) == "2.0.0"
    if mode != "overwrite":
        state = decode_trailer(dev.board.read("primary"), dev.strategy.primary.trailer)
        assert state.swap_type is SwapType.PERM
        assert state.image_ok.value == "set"


def test_key_made_by_imgtool_keygen(imgtool: str, dev_key: Path, tmp_path: Path) -> None:
    """A layout trusting an ECDSA P-256 key that imgtool generated: an image imgtool signed with it
    installs, one signed with the (untrusted here) development key does not."""
    key = tmp_path / "root-ec-p256.pem"
    proc = subprocess.run([imgtool, "keygen", "-t", "ecdsa-p256", "-k", str(key)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    base = layout_of("swap-move", "nrf52840")
    layout = dataclasses.replace(base, options={**base.options, "signature": "ecdsa-p256",
                                                "keys": [key.read_bytes()]})
    strategy = mcuboot(layout)
    signer = load_private_key_file(key)
    board = Board(layout)
    old = release(strategy, "1.0.0", signer=signer)
    strategy.factory_install(board, old)
    dev = Device(strategy, board, old, release(strategy, "2.0.0", signer=signer))
    assert dev.outcome(dev.boot()) is Outcome.OLD
    program_secondary(dev, imgtool_sign(imgtool, strategy, dev_key, "2.0.0", tmp_path / "dev.bin", "--pad"))
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("not trusted" in line for line in result.log)
    program_secondary(dev, imgtool_sign(imgtool, strategy, key, "2.0.0", tmp_path / "ec.bin", "--pad"))
    assert dev.outcome(dev.boot()) is Outcome.NEW
