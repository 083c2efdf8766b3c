"""Seed 004: the 32-byte header, the 0xFF-filled header region up to the vector table, invalidation."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image import interrupt as it
from mcuota.image.firmware import load_firmware
from mcuota.image.version import ImageVersion

apps = st.binary(min_size=1, max_size=1024)
versions = st.builds(ImageVersion, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
image_types = st.sampled_from(list(it.ImageType))
shas = st.text(alphabet="0123456789abcdef", max_size=8)


def test_layout_offsets() -> None:
    image = it.build_interrupt_image(b"APP!", ImageVersion(1, 2, 3), git_sha="1a2b3c4d")
    assert len(image) == 0x80 + 4
    fields = struct.unpack_from("<HHIIBBBBII8s", image)
    assert fields == (0xCAFE, 1, zlib.crc32(image[32:]), len(image) - 32, 2, 1, 2, 3, 0x08020080, 0,
                      b"1a2b3c4d")
    assert image[32:0x80] == b"\xff" * (0x80 - 32)
    assert image[0x80:] == b"APP!"


@given(apps, versions, image_types, st.integers(0, 4).map(lambda k: 0x80 << k), shas)
def test_build_parse_round_trip(app: bytes, version: ImageVersion, image_type: it.ImageType,
                                region: int, sha: str) -> None:
    slot = 0x08040000
    image = it.build_interrupt_image(app, version, slot=slot, header_region=region, image_type=image_type,
                                     git_sha=sha)
    parsed = it.parse_interrupt_image(image)
    header = parsed.header
    assert (header.magic, header.hdr_version) == (it.MAGIC, it.HEADER_VERSION)
    assert header.version == version
    assert parsed.image_type == image_type
    assert header.vector_addr == slot + region
    assert header.git_sha_text == sha
    assert header.data_size == len(image) - 32
    assert header.crc == zlib.crc32(image[32:])
    assert parsed.data == b"\xff" * (region - 32) + app
    assert it.verify_interrupt_image(image, slot=slot).ok
    assert it.looks_like(image)
    assert it.InterruptHeader.unpack(header.pack()) == header


@given(apps, st.data())
def test_any_flipped_bit_after_the_header_fails_verification(app: bytes, data: st.DataObject) -> None:
    image = bytearray(it.build_interrupt_image(app, ImageVersion(1, 0, 0)))
    image[data.draw(st.integers(32, len(image) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    result = it.verify_interrupt_image(bytes(image))
    assert not result.ok
    assert "crc32 mismatch" in result.reason


def test_vector_table_must_sit_right_after_the_header_region() -> None:
    with pytest.raises(UsageError, match=r"vector table is at 0x08003000, but slot 0x08020000 \+ header "
                                         r"region 0x80 = 0x08020080"):
        it.build_interrupt_image(b"x", ImageVersion(1), vector_addr=0x08003000)
    assert it.build_interrupt_image(b"x", ImageVersion(1), vector_addr=0x08020080)


@pytest.mark.parametrize(("region", "message"), [(16, "smaller than the 32-byte header"),
                                                 (0x40, "not 128-byte aligned"),
                                                 (0x20, "not 128-byte aligned")])
def test_header_region_limits(region: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        it.build_interrupt_image(b"x", ImageVersion(1), header_region=region)


@pytest.mark.parametrize(("version", "message"), [(ImageVersion(1, 2, 256), "patch 256 is out of range"),
                                                  (ImageVersion(1, 2, 3, 4), "no build number")])
def test_versions_the_header_cannot_hold(version: ImageVersion, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        it.build_interrupt_image(b"x", version)


def test_git_sha_field() -> None:
    def sha_of(text: str) -> bytes:
        return it.parse_interrupt_image(it.build_interrupt_image(b"x", ImageVersion(1), git_sha=text)
                                        ).header.git_sha

    assert sha_of("") == bytes(8)
    assert sha_of("abc1234") == b"abc1234\0"
    assert sha_of("0123456789abcdef0123456789abcdef01234567") == b"01234567"
    with pytest.raises(UsageError, match="not a hex commit id"):
        sha_of("not-a-commit-id")
    with pytest.raises(UsageError, match="printable ASCII"):
        sha_of("caf\u00e9")


def test_capacity_counts_the_whole_image() -> None:
    assert len(it.build_interrupt_image(b"x" * (1024 - 0x80), ImageVersion(1), max_size=1024)) == 1024
    with pytest.raises(CapacityError, match="1025 bytes, over the 1024-byte slot"):
        it.build_interrupt_image(b"x" * (1025 - 0x80), ImageVersion(1), max_size=1024)
    with pytest.raises(FormatError, match="empty"):
        it.build_interrupt_image(b"", ImageVersion(1))


def test_default_slots_follow_the_seed_map() -> None:
    assert it.default_slot(it.ImageType.LOADER) == (0x08004000, 112 * 1024)
    assert it.default_slot(it.ImageType.APP) == (0x08020000, 896 * 1024)
    assert it.default_slot(it.ImageType.UPDATER) == (0x08020000, 896 * 1024)


def test_invalidate_zeroes_the_header_only() -> None:
    image = it.build_interrupt_image(b"app", ImageVersion(1))
    dead = it.invalidate_interrupt_image(image)
    assert dead[:32] == bytes(32)
    assert dead[32:] == image[32:]
    assert not it.looks_like(dead)
    with pytest.raises(FormatError, match=r"bad magic 0x0000 at offset 0 .*invalidated"):
        it.verify_interrupt_image(dead)
    with pytest.raises(FormatError, match="truncated header"):
        it.invalidate_interrupt_image(bytes(31))


def _header(**changes: int | bytes) -> bytes:
    values: dict[str, int | bytes] = {
        "magic": 0xCAFE, "hdr_version": 1, "crc": 0, "data_size": 4, "image_type": 2, "major": 1,
        "minor": 0, "patch": 0, "vector_addr": 0x08020080, "reserved": 0, "git_sha": b"",
    }
    values.update(changes)
    return it.InterruptHeader(**values).pack()  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated header: 0 of 32"),
    (_header()[:31], "truncated header: 31 of 32"),
    (_header(magic=0xBEEF) + b"1234", "bad magic 0xbeef at offset 0"),
    (_header(hdr_version=2) + b"1234", "unsupported header version 2 at offset 2"),
    (_header(image_type=4) + b"1234", "unknown image type 4 at offset 12"),
    (_header(image_type=0) + b"1234", "unknown image type 0"),
    (_header() + b"12", "truncated image: header at offset 8 says 4 bytes follow, 2 do"),
    (_header() + b"123456", "2 unexpected bytes at offset 36"),
    (b"\xfe\xca" + b"\xff" * 60, "unsupported header version 65535"),
])
def test_malformed_images_are_format_errors(data: bytes, message: str) -> None:
    for call in (it.parse_interrupt_image, it.verify_interrupt_image, it.describe):
        with pytest.raises(FormatError, match=message):
            call(data)


@given(st.binary(max_size=80) | st.binary(max_size=80).map(lambda b: b"\xfe\xca\x01\x00" + b))
def test_garbage_is_a_format_error_or_a_verdict(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        it.verify_interrupt_image(data)
    with contextlib.suppress(FormatError):
        it.describe(data)
    assert isinstance(it.looks_like(data), bool)


def test_header_pack_names_the_field_that_does_not_fit() -> None:
    with pytest.raises(UsageError, match="major 256 does not fit its 8-bit field"):
        _header(major=256)
    with pytest.raises(UsageError, match="git_sha is longer than 8 bytes"):
        _header(git_sha=b"123456789")


def test_slot_check_in_verification() -> None:
    image = it.build_interrupt_image(b"app", ImageVersion(1), slot=0x08020000)
    assert it.verify_interrupt_image(image, slot=0x08020000).ok
    wrong = it.verify_interrupt_image(image, slot=0x08004000)
    assert not wrong.ok
    assert "outside the image in slot 0x08004000" in wrong.reason


def test_describe() -> None:
    image = it.build_interrupt_image(b"app", ImageVersion(2, 0, 1), image_type=it.ImageType.UPDATER,
                                     git_sha="deadbeef")
    assert it.describe(image) == {
        "format": "interrupt", "header_size": 32, "magic": "0xcafe", "hdr_version": 1,
        "crc": f"0x{zlib.crc32(image[32:]):08x}", "crc_ok": True, "data_size": 0x80 - 32 + 3,
        "image_type": "updater", "version": "2.0.1", "vector_addr": "0x08020080", "reserved": 0,
        "git_sha": "deadbeef",
    }
    corrupt = image[:-1] + b"X"
    assert it.describe(corrupt)["crc_ok"] is False


def test_sample_app_is_linked_for_the_header_region(sample: Callable[..., Path]) -> None:
    elf = load_firmware(sample("interrupt-f429", "2.0.0", "elf"))
    assert elf.start == it.SLOT2_ADDRESS + it.DEFAULT_HEADER_REGION
    binary = sample("interrupt-f429", "2.0.0", "bin").read_bytes()
    assert elf.contiguous() == binary
    image = it.build_interrupt_image(binary, ImageVersion(2), vector_addr=elf.start)
    assert image[0x80:] == binary
    assert it.verify_interrupt_image(image, slot=it.SLOT2_ADDRESS).ok
    # Word 1 of the vector table, the reset handler, lies inside the slot.
    reset = struct.unpack_from("<I", image, 0x84)[0] & ~1
    assert it.SLOT2_ADDRESS + 0x80 <= reset < it.SLOT2_ADDRESS + len(image)
