"""Seed 001's image (16-byte header before the payload) and the bootloader's 20-byte flash record."""

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
from mcuota.image import stm32_header as sh
from mcuota.image.checksums import crc32_stm32
from mcuota.image.firmware import load_firmware

payloads = st.binary(min_size=1, max_size=600)
versions = st.integers(0, 0xFFFFFFFF)
variants = st.sampled_from(sh.CRC_VARIANTS)


def test_layout_is_four_little_endian_words_before_the_payload() -> None:
    image = sh.build_stm32_image(b"hello world", 4)
    assert image[:4] == bytes.fromhex("abefcdab")  # 0xABCDEFAB little-endian
    assert struct.unpack_from("<IIII", image) == (0xABCDEFAB, 11, zlib.crc32(b"hello world"), 4)
    assert image[16:] == b"hello world"


@given(payloads, versions, variants)
def test_build_parse_round_trip(payload: bytes, version: int, crc: sh.CrcVariant) -> None:
    image = sh.build_stm32_image(payload, version, crc=crc)
    parsed = sh.parse_stm32_image(image)
    assert parsed.header.magic == sh.MAGIC
    assert parsed.header.version == version
    assert parsed.payload[: len(payload)] == payload
    assert parsed.header.size == len(parsed.payload)
    assert sh.verify_stm32_image(image, crc=crc).ok
    assert crc in sh.matching_variants(image)
    assert sh.looks_like(image)


@given(payloads)
def test_stm32_variant_pads_to_whole_words_with_erased_bytes(payload: bytes) -> None:
    image = sh.build_stm32_image(payload, 1, crc="crc32-stm32")
    body = sh.parse_stm32_image(image).payload
    assert len(body) % 4 == 0
    assert body == payload + b"\xff" * (len(body) - len(payload))
    assert sh.parse_stm32_image(image).header.crc == crc32_stm32(body)


def test_zlib_variant_leaves_the_payload_as_is() -> None:
    assert sh.parse_stm32_image(sh.build_stm32_image(b"abc", 1)).payload == b"abc"


@given(payloads, variants, st.data())
def test_any_flipped_payload_bit_fails_verification(payload: bytes, crc: sh.CrcVariant,
                                                    data: st.DataObject) -> None:
    image = bytearray(sh.build_stm32_image(payload, 7, crc=crc))
    position = data.draw(st.integers(sh.HEADER_SIZE, len(image) - 1))
    image[position] ^= 1 << data.draw(st.integers(0, 7))
    result = sh.verify_stm32_image(bytes(image), crc=crc)
    assert not result.ok
    assert result.expected_crc != result.actual_crc
    assert "mismatch" in result.reason


def test_describe_names_the_variant_that_matches() -> None:
    payload = bytes(range(256)) * 4
    assert sh.describe(sh.build_stm32_image(payload, 4))["crc_variant"] == "crc32"
    described = sh.describe(sh.build_stm32_image(payload, 4, crc="crc32-stm32"))
    assert described == {
        "format": "stm32-header", "header_size": 16, "magic": "0xabcdefab", "size": 1024,
        "crc": f"0x{crc32_stm32(payload):08x}", "crc_variant": "crc32-stm32", "crc_ok": True, "version": 4,
    }
    corrupt = bytearray(sh.build_stm32_image(payload, 4))
    corrupt[-1] ^= 0xFF
    assert sh.describe(bytes(corrupt))["crc_variant"] is None
    assert sh.describe(bytes(corrupt))["crc_ok"] is False


def test_stm32_variant_refuses_a_payload_that_is_not_whole_words() -> None:
    body = b"abcde"
    image = sh.Stm32Header(sh.MAGIC, len(body), crc32_stm32(body), 1).pack() + body
    result = sh.verify_stm32_image(image, crc="crc32-stm32")
    assert not result.ok
    assert "not whole words" in result.reason


@pytest.mark.parametrize(("data", "message"), [
    (b"", r"truncated header: 0 of 16"),
    (bytes.fromhex("abefcdab") + b"\0" * 8, r"truncated header: 12 of 16"),
    (struct.pack("<IIII", 0xDEADBEEF, 1, 0, 0) + b"x", r"bad magic 0xdeadbeef at offset 0"),
    (struct.pack("<IIII", sh.MAGIC, 0, 0, 0), r"size 0 at offset 4"),
    (struct.pack("<IIII", sh.MAGIC, 10, 0, 0) + b"12345", r"truncated payload.*says 10 bytes, 5 follow"),
    (struct.pack("<IIII", sh.MAGIC, 2, 0, 0) + b"1234", r"2 unexpected bytes at offset 18"),
    (b"\x7fELF" + bytes(100), r"bad magic"),
])
def test_malformed_images_are_format_errors(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        sh.parse_stm32_image(data)
    with pytest.raises(FormatError, match=message):
        sh.verify_stm32_image(data)
    with pytest.raises(FormatError, match=message):
        sh.describe(data)


@given(st.binary(max_size=64) | st.binary(max_size=64).map(lambda b: bytes.fromhex("abefcdab") + b))
def test_garbage_never_escapes_as_anything_but_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        sh.describe(data)
    assert isinstance(sh.looks_like(data), bool)


def test_looks_like_only_checks_the_magic() -> None:
    assert sh.looks_like(struct.pack("<IIII", sh.MAGIC, 0, 0, 0))
    assert not sh.looks_like(bytes(16))
    assert not sh.looks_like(bytes.fromhex("abefcdab"))


@pytest.mark.parametrize("version", [-1, 1 << 32])
def test_version_out_of_range(version: int) -> None:
    with pytest.raises(UsageError, match=r"version .* out of range"):
        sh.build_stm32_image(b"x", version)


def test_empty_and_oversized_payloads() -> None:
    with pytest.raises(FormatError, match="empty"):
        sh.build_stm32_image(b"", 1)
    with pytest.raises(CapacityError, match="1025 bytes, over the 1024-byte limit"):
        sh.build_stm32_image(b"x" * 1025, 1, max_size=1024)
    with pytest.raises(CapacityError, match="1028 bytes"):  # the padding counts
        sh.build_stm32_image(b"x" * 1025, 1, crc="crc32-stm32", max_size=1027)
    assert len(sh.build_stm32_image(b"x" * 1024, 1, max_size=1024)) == 1040


def test_unknown_variant_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown CRC variant 'crc16'"):
        sh.build_stm32_image(b"x", 1, crc="crc16")  # type: ignore[arg-type]


def test_header_pack_names_the_field_that_does_not_fit() -> None:
    with pytest.raises(UsageError, match="size -1 is not a u32"):
        sh.Stm32Header(sh.MAGIC, -1, 0, 0).pack()


def test_sample_firmware_from_bin_hex_and_elf_builds_the_same_image(sample: Callable[..., Path]) -> None:
    images = {sh.build_stm32_image(load_firmware(sample("stm32-header-f103", "1.1.0", ext)).contiguous(), 5)
              for ext in ("bin", "hex", "elf")}
    assert len(images) == 1
    image = images.pop()
    assert sh.parse_stm32_image(image).payload == sample("stm32-header-f103", "1.1.0", "bin").read_bytes()
    assert sh.verify_stm32_image(image).ok


# ---------------------------------------------------------------------- the bootloader's flash record

def test_app_header_record_layout() -> None:
    record = sh.AppHeader(sh.OTA_FLAG_NONE, sh.MAGIC, 5308, 0x37CDDA5C, 4)
    raw = sh.encode_app_header(record)
    assert raw == struct.pack("<IIIII", 0, 0xABCDEFAB, 5308, 0x37CDDA5C, 4)
    assert len(raw) == sh.APP_HEADER_SIZE == 20
    assert sh.decode_app_header(raw) == record


@given(st.tuples(*[st.integers(0, 0xFFFFFFFF)] * 5))
def test_app_header_round_trip(values: tuple[int, int, int, int, int]) -> None:
    record = sh.AppHeader(*values)
    assert sh.decode_app_header(sh.encode_app_header(record)) == record


def test_only_an_explicit_one_requests_an_update() -> None:
    erased = sh.decode_app_header(b"\xff" * 20)
    assert erased.ota_flag == sh.OTA_FLAG_ERASED
    assert not erased.ota_requested
    assert not erased.has_app
    assert not sh.AppHeader(0, sh.MAGIC, 1, 0, 0).ota_requested
    assert sh.AppHeader(1, sh.MAGIC, 1, 0, 0).ota_requested
    assert not sh.AppHeader(2, sh.MAGIC, 1, 0, 0).ota_requested


def test_record_written_after_an_update_copies_the_image_header() -> None:
    header = sh.parse_stm32_image(sh.build_stm32_image(b"firmware", 9)).header
    record = sh.app_header_for(header)
    assert record == sh.AppHeader(0, sh.MAGIC, 8, zlib.crc32(b"firmware"), 9)
    assert record.has_app
    assert not record.ota_requested


def test_truncated_record_and_unencodable_values() -> None:
    with pytest.raises(FormatError, match="truncated: 19 of 20"):
        sh.decode_app_header(bytes(19))
    with pytest.raises(UsageError, match="ota_flag 4294967296 is not a u32"):
        sh.encode_app_header(sh.AppHeader(1 << 32, sh.MAGIC, 0, 0, 0))
