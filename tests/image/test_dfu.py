"""The DFU 1.1 suffix: exact layout, the CRC rule, strip/verify, and the device-match check the USB
DFU host relies on to refuse a file made for another board."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import FormatError, UsageError
from mcuota.image.dfu import (
    BCD_DFU_1_0,
    BCD_DFUSE,
    SUFFIX_LENGTH,
    DfuSuffix,
    add_dfu_suffix,
    build_dfu_suffix,
    dfu_crc,
    ensure_for_device,
    has_dfu_suffix,
    parse_dfu_suffix,
    split_dfu_file,
    strip_dfu_suffix,
    verify_dfu_suffix,
)

PAYLOAD = bytes(range(256)) * 3


def test_suffix_layout_is_byte_exact() -> None:
    data = add_dfu_suffix(PAYLOAD, vid=0x1209, pid=0xDB42, did=0x0102)
    assert data[: len(PAYLOAD)] == PAYLOAD
    assert len(data) == len(PAYLOAD) + SUFFIX_LENGTH
    did, pid, vid, bcd, sig, length, crc = struct.unpack("<HHHH3sBI", data[-16:])
    assert (did, pid, vid, bcd, sig, length) == (0x0102, 0xDB42, 0x1209, BCD_DFU_1_0, b"UFD", 16)
    assert crc == zlib.crc32(data[:-4]) ^ 0xFFFFFFFF == dfu_crc(data[:-4])
    assert data[-16:] == build_dfu_suffix(PAYLOAD, vid=0x1209, pid=0xDB42, did=0x0102)


def test_defaults_are_wildcards() -> None:
    suffix = parse_dfu_suffix(add_dfu_suffix(PAYLOAD))
    assert (suffix.vid, suffix.pid, suffix.did, suffix.bcd_dfu) == (0xFFFF, 0xFFFF, 0xFFFF, 0x0100)
    assert not suffix.is_dfuse
    assert parse_dfu_suffix(add_dfu_suffix(PAYLOAD, bcd_dfu=BCD_DFUSE)).is_dfuse


def test_verify_reports_crc_without_raising() -> None:
    data = bytearray(add_dfu_suffix(PAYLOAD, vid=0x0483, pid=0xDF11))
    check = verify_dfu_suffix(bytes(data))
    assert check.crc_ok
    assert check.valid
    assert check.payload_length == len(PAYLOAD)
    data[5] ^= 0x01
    bad = verify_dfu_suffix(bytes(data))
    assert not bad.crc_ok
    assert bad.suffix.vid == 0x0483
    assert bad.computed_crc != bad.suffix.crc


def test_strip_returns_the_original_and_checks_the_crc() -> None:
    data = add_dfu_suffix(PAYLOAD, vid=1, pid=2, did=3)
    assert strip_dfu_suffix(data) == PAYLOAD
    damaged = data[:-1] + bytes([data[-1] ^ 0x80])
    with pytest.raises(FormatError, match=r"CRC 0x.* does not match"):
        strip_dfu_suffix(damaged)
    assert strip_dfu_suffix(damaged, verify_crc=False) == PAYLOAD


@pytest.mark.parametrize(("data", "message"), [
    (b"", "0 bytes is too short"),
    (b"UFD\x10" + b"\x00" * 8, "12 bytes is too short"),
    (PAYLOAD + b"\x00" * 16, r"offset \d+ are b'\\x00\\x00\\x00', not b'UFD'"),
    (PAYLOAD, "not b'UFD'"),
])
def test_missing_or_mangled_suffix(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        verify_dfu_suffix(data)
    with pytest.raises(FormatError):
        strip_dfu_suffix(data)
    assert not has_dfu_suffix(data)


def test_truncated_suffix_is_not_a_suffix() -> None:
    data = add_dfu_suffix(PAYLOAD)
    for cut in (1, 4, 8, 15):
        with pytest.raises(FormatError):
            strip_dfu_suffix(data[:-cut])


def test_blength_out_of_range() -> None:
    data = bytearray(add_dfu_suffix(b"abc"))
    data[-5] = 15
    with pytest.raises(FormatError, match="bLength 15"):
        parse_dfu_suffix(bytes(data))
    data[-5] = 200
    with pytest.raises(FormatError, match="bLength 200"):
        parse_dfu_suffix(bytes(data))


def test_longer_blength_covers_extra_suffix_bytes() -> None:
    """A suffix may be longer than 16 bytes (bLength says so); the payload ends before it."""
    head = b"payload" + b"\xee" * 4 + struct.pack("<HHHH3sB", 0xFFFF, 1, 2, 0x0100, b"UFD", 20)
    data = head + struct.pack("<I", dfu_crc(head))
    assert split_dfu_file(data) == (b"payload", DfuSuffix(2, 1, 0xFFFF, 0x0100, 20, dfu_crc(head)))


def test_refuses_a_second_suffix() -> None:
    once = add_dfu_suffix(PAYLOAD)
    with pytest.raises(UsageError, match="already has a DFU suffix"):
        add_dfu_suffix(once)
    assert strip_dfu_suffix(strip_dfu_suffix(add_dfu_suffix(once, allow_existing=True))) == PAYLOAD


@pytest.mark.parametrize("field", ["vid", "pid", "did", "bcd_dfu"])
def test_ids_must_fit_16_bits(field: str) -> None:
    with pytest.raises(UsageError, match="16 bits"):
        add_dfu_suffix(PAYLOAD, **{field: 0x10000})


def test_device_matching_and_wildcards() -> None:
    exact = DfuSuffix(vid=0x1209, pid=0xDB42, did=0x0100)
    assert exact.matches(0x1209, 0xDB42)
    assert exact.matches(0x1209, 0xDB42, 0x0100)
    assert not exact.matches(0x1209, 0xDB42, 0x0200)
    assert not exact.matches(0x0483, 0xDB42)
    assert not exact.matches(0x1209, 0xDF11)
    anything = DfuSuffix()
    assert anything.matches(0x0483, 0xDF11, 0x2200)
    assert DfuSuffix(vid=0x1209).matches(0x1209, 0x1234)
    ensure_for_device(exact, 0x1209, 0xDB42)
    with pytest.raises(UsageError, match="for device 1209:db42, the device attached is 0483:df11"):
        ensure_for_device(exact, 0x0483, 0xDF11)
    with pytest.raises(UsageError, match="release 0100"):
        ensure_for_device(exact, 0x1209, 0xDB42, 0x0101)


@given(st.binary(max_size=2000), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.sampled_from([0x0100, 0x0110, 0x011A]))
def test_add_then_split_round_trip(payload: bytes, vid: int, pid: int, did: int, bcd: int) -> None:
    data = add_dfu_suffix(payload, vid=vid, pid=pid, did=did, bcd_dfu=bcd, allow_existing=True)
    back, suffix = split_dfu_file(data)
    assert back == payload
    assert (suffix.vid, suffix.pid, suffix.did, suffix.bcd_dfu, suffix.length) == (vid, pid, did, bcd, 16)
