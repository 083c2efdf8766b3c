"""The checksum registry: known values, an independent bit-by-bit model of the STM32 CRC unit, and
incremental use in pieces of any length (the way a bootloader checks while it writes)."""

from __future__ import annotations

import binascii
import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import UsageError
from mcuota.image import checksums
from mcuota.image.checksums import CHECKSUM_NAMES, checksum, crc16_xmodem, crc32, crc32_stm32, new

CHECK = b"123456789"


def stm32_unit_model(data: bytes, register: int = 0xFFFFFFFF) -> int:
    """The reference manual's description, literally: each whole little-endian word is XORed into
    the register, which then shifts left 32 times, XORing the polynomial when a 1 falls out."""
    for offset in range(0, len(data) - len(data) % 4, 4):
        register ^= int.from_bytes(data[offset : offset + 4], "little")
        for _ in range(32):
            carry = register & 0x80000000
            register = (register << 1) & 0xFFFFFFFF
            if carry:
                register ^= 0x04C11DB7
    return register


def test_registry_names_and_digest_sizes() -> None:
    assert CHECKSUM_NAMES == ("crc32", "crc32-stm32", "crc16-xmodem", "md5", "sha256")
    sizes = {name: new(name).digest_size for name in CHECKSUM_NAMES}
    assert sizes == {"crc32": 4, "crc32-stm32": 4, "crc16-xmodem": 2, "md5": 16, "sha256": 32}
    assert all(new(name).name == name for name in CHECKSUM_NAMES)


def test_catalogue_check_values() -> None:
    assert checksum("crc32", CHECK).hex() == "cbf43926"        # CRC-32/ISO-HDLC check value
    assert checksum("crc16-xmodem", CHECK).hex() == "31c3"     # CRC-16/XMODEM check value
    assert checksum("md5", CHECK) == hashlib.md5(CHECK, usedforsecurity=False).digest()
    assert checksum("sha256", CHECK) == hashlib.sha256(CHECK).digest()


def test_crc_digest_is_the_value_big_endian() -> None:
    assert checksum("crc32", CHECK) == zlib.crc32(CHECK).to_bytes(4, "big")
    assert checksum("crc32-stm32", CHECK) == crc32_stm32(CHECK).to_bytes(4, "big")
    assert checksum("crc16-xmodem", CHECK) == binascii.crc_hqx(CHECK, 0).to_bytes(2, "big")


def test_stm32_crc_is_not_zlib_crc32() -> None:
    data = bytes(range(64))
    assert crc32_stm32(data) != zlib.crc32(data)
    assert crc32_stm32(data) == stm32_unit_model(data)


def test_stm32_crc_of_nothing_is_the_reset_value() -> None:
    assert crc32_stm32(b"") == 0xFFFFFFFF
    assert crc32_stm32(b"\x01\x02\x03") == 0xFFFFFFFF  # no whole word: the unit saw nothing


def test_stm32_crc_of_one_word_feeds_it_little_endian() -> None:
    # Word 0x04030201 as the unit sees it: its bytes in memory are 01 02 03 04.
    assert crc32_stm32(b"\x01\x02\x03\x04") == stm32_unit_model((0x04030201).to_bytes(4, "little"))
    assert crc32_stm32(b"\x01\x02\x03\x04") != stm32_unit_model(b"\x04\x03\x02\x01")


@given(st.binary(max_size=300))
def test_stm32_crc_matches_the_bitwise_model(data: bytes) -> None:
    assert crc32_stm32(data) == stm32_unit_model(data)


@given(st.binary(max_size=64), st.integers(0, 0xFFFFFFFF))
def test_stm32_crc_continues_from_any_register(data: bytes, register: int) -> None:
    assert crc32_stm32(data, register) == stm32_unit_model(data, register)


@given(st.binary(max_size=200).map(lambda b: b[: len(b) - len(b) % 4]), st.binary(max_size=200))
def test_stm32_crc_continues_across_word_boundaries(first: bytes, second: bytes) -> None:
    assert crc32_stm32(second, crc32_stm32(first)) == crc32_stm32(first + second)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_crc32_and_crc16_continue(first: bytes, second: bytes) -> None:
    assert crc32(second, crc32(first)) == zlib.crc32(first + second)
    assert crc16_xmodem(second, crc16_xmodem(first)) == binascii.crc_hqx(first + second, 0)


@given(st.sampled_from(CHECKSUM_NAMES), st.lists(st.binary(max_size=23), max_size=12))
def test_incremental_in_any_pieces_equals_one_shot(name: str, pieces: list[bytes]) -> None:
    summer = new(name)
    for piece in pieces:
        summer.update(piece)
    whole = b"".join(pieces)
    assert summer.digest() == checksum(name, whole)
    assert summer.hexdigest() == checksum(name, whole).hex()


def test_incremental_stm32_reports_the_bytes_it_leaves_out() -> None:
    summer = checksums.Crc32Stm32()
    summer.update(b"\xaa" * 5)
    assert summer.pending == 1
    assert summer.value == crc32_stm32(b"\xaa" * 4)
    summer.update(b"\xbb" * 3)
    assert summer.pending == 0
    assert summer.value == crc32_stm32(b"\xaa" * 5 + b"\xbb" * 3)


def test_incremental_accepts_memoryview_and_bytearray() -> None:
    data = bytes(range(37))
    for name in CHECKSUM_NAMES:
        summer = new(name)
        summer.update(memoryview(data)[:10])
        summer.update(bytearray(data[10:]))
        assert summer.digest() == checksum(name, data)


def test_unknown_name_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown checksum 'crc64'.*crc32-stm32"):
        checksum("crc64", b"")


def test_stm32_register_out_of_range_is_refused() -> None:
    with pytest.raises(UsageError, match="32-bit"):
        crc32_stm32(b"abcd", 1 << 32)
