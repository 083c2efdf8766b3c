"""Our CRCs against SRecord's srec_cat, the field's tool for putting CRCs into firmware images:
``-crc32-l-e`` is zlib's CRC-32 and ``-stm32-l-e`` the STM32 CRC unit, each stored little-endian."""

from __future__ import annotations

import random
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import require_tool, run_mcuota
from mcuota.image import interrupt, stm32_header
from mcuota.image.checksums import crc32, crc32_stm32
from mcuota.image.firmware import load_firmware
from mcuota.image.version import ImageVersion
from mcuota.samples import RELEASES

pytestmark = pytest.mark.interop

FILTERS = {"crc32": "-crc32-l-e", "crc32-stm32": "-stm32-l-e"}
OURS = {"crc32": crc32, "crc32-stm32": crc32_stm32}


def srec_cat_crc(path: Path, algo: str, *, reader: tuple[str, ...] = ("-binary",), start: int = 0) -> int:
    """Let srec_cat compute the CRC of a file's bytes (from ``start``) and read back the 4 bytes it
    stores just past the data."""
    srec_cat = require_tool("srec_cat")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "crc.bin"
        size = _data_length(path, reader, start)
        subprocess.run([srec_cat, str(path), *reader, "-offset", str(-start), FILTERS[algo], str(size),
                        "-crop", str(size), str(size + 4), "-offset", str(-size), "-o", str(out), "-binary"],
                       check=True, capture_output=True)
        stored = out.read_bytes()
    assert len(stored) == 4
    return int.from_bytes(stored, "little")


def _data_length(path: Path, reader: tuple[str, ...], start: int) -> int:
    if reader == ("-binary",):
        return path.stat().st_size
    return load_firmware(path).end - start


def _crc_of_bytes(data: bytes, algo: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.bin"
        path.write_bytes(data)
        return srec_cat_crc(path, algo)


@pytest.mark.parametrize("algo", sorted(FILTERS))
@pytest.mark.parametrize("target", ["gizwits-f103", "stm32-header-f103", "interrupt-f429", "large-f407"])
def test_sample_firmware_crcs_equal_srec_cat(sample: Callable[..., Path], target: str, algo: str) -> None:
    for release in RELEASES:
        path = sample(target, release, "bin")
        assert OURS[algo](path.read_bytes()) == srec_cat_crc(path, algo), (target, release)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1200), st.sampled_from([1, 2, 3, 0]), st.randoms(use_true_random=False))
def test_random_data_of_odd_lengths_equals_srec_cat(words: int, extra: int, rnd: random.Random) -> None:
    data = rnd.randbytes(4 * words + extra)
    assert crc32(data) == _crc_of_bytes(data, "crc32")
    assert crc32_stm32(data) == _crc_of_bytes(data, "crc32-stm32")


@pytest.mark.parametrize("length", [0, 1, 2, 3, 5, 6, 7])
def test_short_tails_equal_srec_cat(length: int) -> None:
    data = bytes((37 * i + 11) & 0xFF for i in range(length))
    assert crc32_stm32(data) == _crc_of_bytes(data, "crc32-stm32")  # a partial word is ignored
    assert crc32(data) == _crc_of_bytes(data, "crc32")


def test_srec_cat_reading_the_hex_agrees_with_our_loader(sample: Callable[..., Path]) -> None:
    path = sample("stm32-header-f103", "2.0.0", "hex")
    firmware = load_firmware(path)
    for algo in FILTERS:
        assert OURS[algo](firmware.contiguous()) == srec_cat_crc(path, algo, reader=("-intel",),
                                                                 start=firmware.start)


@pytest.mark.parametrize("crc", stm32_header.CRC_VARIANTS)
def test_stm32_header_crc_is_srec_cats_over_the_payload(sample: Callable[..., Path], tmp_path: Path,
                                                        crc: stm32_header.CrcVariant) -> None:
    image = stm32_header.build_stm32_image(sample("stm32-header-f103", "1.1.0", "bin").read_bytes(), 3,
                                           crc=crc)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(image[stm32_header.HEADER_SIZE :])
    assert stm32_header.parse_stm32_image(image).header.crc == srec_cat_crc(payload, crc)


@pytest.mark.parametrize("length", [4097, 4098, 4099])
def test_stm32_padding_is_srec_cats_recommended_fill(tmp_path: Path, length: int) -> None:
    """srec_cat warns about a partial word and recommends ``-fill 0xFF -within IN -range-padding 4``
    before ``-stm32-l-e``; the stm32-header builder's padding must give the same CRC."""
    srec_cat = require_tool("srec_cat")
    data = bytes((7 * i + 3) & 0xFF for i in range(length))
    path = tmp_path / "app.bin"
    path.write_bytes(data)
    padded = length + (-length) % 4
    out = tmp_path / "crc.bin"
    subprocess.run([srec_cat, str(path), "-binary", "-fill", "0xFF", "-within", str(path), "-binary",
                    "-range-padding", "4", "-stm32-l-e", str(padded), "-crop", str(padded), str(padded + 4),
                    "-offset", str(-padded), "-o", str(out), "-binary"], check=True, capture_output=True)
    image = stm32_header.build_stm32_image(data, 1, crc="crc32-stm32")
    assert stm32_header.parse_stm32_image(image).header.crc == int.from_bytes(out.read_bytes(), "little")


def test_interrupt_header_crc_is_srec_cats_over_everything_after_the_header(
        sample: Callable[..., Path], tmp_path: Path) -> None:
    image = interrupt.build_interrupt_image(sample("interrupt-f429", "2.0.0", "bin").read_bytes(),
                                            ImageVersion(2))
    body = tmp_path / "body.bin"
    body.write_bytes(image[interrupt.HEADER_SIZE :])
    assert interrupt.parse_interrupt_image(image).header.crc == srec_cat_crc(body, "crc32")


def test_checksum_command_prints_what_srec_cat_computes(sample: Callable[..., Path]) -> None:
    path = sample("gizwits-f103", "2.0.0", "bin")
    proc = run_mcuota("image", "checksum", "--algo", "crc32", "--algo", "crc32-stm32", path, check=True)
    printed = dict(line.split() for line in proc.stdout.splitlines())
    assert int(printed["crc32"], 16) == srec_cat_crc(path, "crc32")
    assert int(printed["crc32-stm32"], 16) == srec_cat_crc(path, "crc32-stm32")
