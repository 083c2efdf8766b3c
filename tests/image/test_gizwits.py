"""Seed 000: the raw .bin's metadata (size, MD5, softVer), its JSON sidecar and the FLAG record."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image import gizwits as gz
from mcuota.image.version import ImageVersion

soft_vers = st.text(alphabet="0123456789", min_size=8, max_size=8)
hard_vers = st.none() | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                min_size=8, max_size=8)
payloads = st.binary(min_size=1, max_size=2048)


def test_metadata_of_the_sample(sample: Callable[..., Path]) -> None:
    payload = sample("gizwits-f103", "2.0.0", "bin").read_bytes()
    metadata = gz.build_gizwits_metadata(payload, "03030006")
    assert metadata.size == len(payload)
    assert metadata.md5 == hashlib.md5(payload, usedforsecurity=False).digest()
    assert metadata.md5_hex == hashlib.md5(payload, usedforsecurity=False).hexdigest()
    assert metadata.version == ImageVersion(3, 3, 6)
    assert gz.verify_gizwits_image(payload, metadata).ok


@given(payloads, soft_vers, hard_vers)
def test_sidecar_round_trip(payload: bytes, soft_ver: str, hard_ver: str | None) -> None:
    metadata = gz.build_gizwits_metadata(payload, soft_ver, hard_ver)
    text = gz.sidecar_json(metadata)
    assert gz.parse_sidecar(text) == metadata
    assert gz.parse_sidecar(text.encode()) == metadata
    assert gz.looks_like(text.encode())
    assert gz.verify_gizwits_image(payload, gz.parse_sidecar(text)).ok


def test_sidecar_fields() -> None:
    metadata = gz.build_gizwits_metadata(b"abc", "01000002", "00000001")
    assert json.loads(gz.sidecar_json(metadata)) == {
        "format": "gizwits", "size": 3, "md5": hashlib.md5(b"abc", usedforsecurity=False).hexdigest(),
        "soft_ver": "01000002", "hard_ver": "00000001",
    }
    assert "hard_ver" not in json.loads(gz.sidecar_json(gz.build_gizwits_metadata(b"abc", "01000002")))


def test_describe_a_sidecar() -> None:
    text = gz.sidecar_json(gz.build_gizwits_metadata(b"abc", "03030006"))
    assert gz.describe(text.encode()) == {
        "format": "gizwits", "size": 3, "md5": hashlib.md5(b"abc", usedforsecurity=False).hexdigest(),
        "soft_ver": "03030006", "version": "3.3.6", "hard_ver": None, "fits_app_partition": True,
    }


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a gizwits sidecar"),
    ('{"format": "interrupt"}', "not a gizwits sidecar"),
    ('{"format": "gizwits", "size": "3", "md5": "' + "0" * 32 + '", "soft_ver": "01000002"}', '"size"'),
    ('{"format": "gizwits", "size": true, "md5": "' + "0" * 32 + '", "soft_ver": "01000002"}', '"size"'),
    ('{"format": "gizwits", "size": 3, "md5": "abc", "soft_ver": "01000002"}', '"md5"'),
    ('{"format": "gizwits", "size": 3, "md5": "' + "0" * 32 + '"}', '"soft_ver"'),
    ('{"format": "gizwits", "size": 3, "md5": "' + "0" * 32 + '", "soft_ver": "1.0"}', "8 ASCII digits"),
    ('{"format": "gizwits", "size": 0, "md5": "' + "0" * 32 + '", "soft_ver": "01000002"}', "size 0"),
    ('{"format": "gizwits", "size": 3, "md5": "' + "0" * 32 + '", "soft_ver": "01000002", "hard_ver": 1}',
     '"hard_ver"'),
])
def test_bad_sidecars_are_format_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        gz.parse_sidecar(text)
    assert not gz.looks_like(text.encode())


def test_looks_like_does_not_claim_binaries_or_deep_json() -> None:
    assert not gz.looks_like(b"\x00\x50\x00\x20" + bytes(100))
    assert not gz.looks_like(b"{" * 100_000)
    assert not gz.looks_like(b"{\xff\xfe}")


@given(payloads, soft_vers, st.data())
def test_verification_catches_a_changed_byte_or_length(payload: bytes, soft_ver: str,
                                                        data: st.DataObject) -> None:
    metadata = gz.build_gizwits_metadata(payload, soft_ver)
    changed = bytearray(payload)
    changed[data.draw(st.integers(0, len(payload) - 1))] ^= 0x80
    result = gz.verify_gizwits_image(bytes(changed), metadata)
    assert not result.ok
    assert "md5 mismatch" in result.reason
    shorter = gz.verify_gizwits_image(payload[:-1], metadata)
    assert not shorter.ok
    assert "size mismatch" in shorter.reason


def test_app_partition_is_26_kib() -> None:
    assert gz.APP_SIZE == 26 * 1024
    assert gz.build_gizwits_metadata(b"\0" * gz.APP_SIZE, "01000000").size == gz.APP_SIZE
    with pytest.raises(CapacityError, match="26625 bytes, over the 26624-byte APP partition"):
        gz.build_gizwits_metadata(b"\0" * (gz.APP_SIZE + 1), "01000000")
    with pytest.raises(CapacityError):
        gz.build_gizwits_metadata(b"\0" * 11, "01000000", max_size=10)
    with pytest.raises(FormatError, match="empty"):
        gz.build_gizwits_metadata(b"", "01000000")


FULLWIDTH_DIGITS = "\uff10\uff13\uff10\uff13\uff10\uff10\uff10\uff16"  # isdigit(), but not ASCII


@pytest.mark.parametrize("soft_ver", ["0303006", "030300060", "0303000a", "03.03.06", " 3030006",
                                      FULLWIDTH_DIGITS])
def test_soft_ver_must_be_eight_ascii_digits(soft_ver: str) -> None:
    with pytest.raises(UsageError, match="8 ASCII digits"):
        gz.build_gizwits_metadata(b"x", soft_ver)


def test_hard_ver_must_be_eight_printable_characters() -> None:
    with pytest.raises(UsageError, match="hardVer"):
        gz.build_gizwits_metadata(b"x", "01000000", "short")


# ------------------------------------------------------------------------- softVer <-> ImageVersion

def test_soft_ver_mapping_examples() -> None:
    assert gz.version_from_soft_ver("03030006") == ImageVersion(3, 3, 6)
    assert gz.soft_ver_from_version(ImageVersion(1, 2, 34)) == "01020034"
    assert gz.soft_ver_from_version(ImageVersion(99, 99, 9999)) == "99999999"


@given(soft_vers)
def test_soft_ver_round_trips_through_image_version(soft_ver: str) -> None:
    assert gz.soft_ver_from_version(gz.version_from_soft_ver(soft_ver)) == soft_ver


@given(soft_vers, soft_vers)
def test_mapping_preserves_the_clouds_order(a: str, b: str) -> None:
    assert (a < b) == (gz.version_from_soft_ver(a) < gz.version_from_soft_ver(b))


@pytest.mark.parametrize("version", [ImageVersion(100, 0, 0), ImageVersion(1, 100, 0),
                                     ImageVersion(1, 0, 10000), ImageVersion(1, 0, 0, 5)])
def test_versions_a_soft_ver_cannot_hold(version: ImageVersion) -> None:
    with pytest.raises(UsageError):
        gz.soft_ver_from_version(version)


# ------------------------------------------------------------------------------------ FLAG record

def test_flag_record_layout() -> None:
    md5 = bytes(range(16))
    raw = gz.encode_flag(gz.GizwitsFlag(0xEEEE, 0x1234, md5))
    assert len(raw) == gz.FLAG_SIZE == 24
    assert raw[0:2] == b"\xee\xee"
    assert raw[4:8] == struct.pack("<I", 0x1234)
    assert raw[8:24] == md5


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.binary(min_size=16, max_size=16))
def test_flag_round_trip(status: int, size: int, md5: bytes) -> None:
    flag = gz.GizwitsFlag(status, size, md5)
    assert gz.decode_flag(gz.encode_flag(flag)) == flag


def test_flag_for_metadata_is_pending_and_erased_flash_is_not() -> None:
    metadata = gz.build_gizwits_metadata(b"new firmware", "02000000")
    flag = gz.flag_for(metadata)
    assert flag.pending
    assert (flag.rom_size, flag.md5) == (12, hashlib.md5(b"new firmware", usedforsecurity=False).digest())
    assert not gz.decode_flag(b"\xff" * 24).pending
    assert gz.decode_flag(gz.encode_flag(flag) + b"\xff" * 1000) == flag  # read from a whole page


def test_flag_errors() -> None:
    with pytest.raises(FormatError, match="truncated: 23 of 24"):
        gz.decode_flag(bytes(23))
    with pytest.raises(UsageError, match="rom_status"):
        gz.encode_flag(gz.GizwitsFlag(0x10000, 0, bytes(16)))
    with pytest.raises(UsageError, match="16 bytes"):
        gz.encode_flag(gz.GizwitsFlag(0xEEEE, 0, bytes(15)))
