"""Verification as the bootloader does it, returning a typed result and never raising for a bad image:
ok, bad_hash, no_matching_signature, malformed (truncated, garbage, bad magic, TLV overruns,
unprotected SEC_CNT, ...), with the reason a user needs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuota.errors import FormatError
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import (
    ImageHeader,
    TlvType,
    VerifyStatus,
    build_image,
    describe_image,
    parse_image,
    verify_image,
)
from mcuota.image.mcuboot.tlv import encode_tlv_block
from mcuota.image.version import ImageVersion

KEY = generate_private_key("ed25519")
OTHER = generate_private_key("ed25519")
EC = generate_private_key("ecdsa-p256")
PAYLOAD = bytes(range(256)) * 8
SIGNED = build_image(PAYLOAD, version=ImageVersion(1, 2, 3, 4), header_size=0x200, key=KEY, pad_header=True,
                     security_counter=7).data


def with_tlvs(data: bytes, protected: list[tuple[int, bytes]] | None,
              unprotected: list[tuple[int, bytes]]) -> bytes:
    """The same header and payload with hand-made TLV blocks (header's protect_tlv_size kept in step)."""
    header = parse_image(data).header
    prot = encode_tlv_block(protected or [], protected=True)
    new_header = header._replace(protect_tlv_size=len(prot)).pack()
    return new_header + data[32 : header.tlv_offset] + prot + encode_tlv_block(unprotected, protected=False)


def test_ok_with_the_right_key() -> None:
    result = verify_image(SIGNED, [OTHER.public(), EC.public(), KEY.public()])
    assert result.status is VerifyStatus.OK
    assert result.ok
    assert result.key_index == 2
    assert result.key_type == "ed25519"
    assert result.signature_checked
    assert result.version == ImageVersion(1, 2, 3, 4)
    assert result.hash == parse_image(SIGNED).find(TlvType.SHA256)[0].value
    assert result.to_dict()["security_counter"] == 7


def test_without_keys_only_the_hash_is_checked() -> None:
    result = verify_image(SIGNED)
    assert result.ok
    assert not result.signature_checked
    assert "signature not checked" in result.reason
    assert result.to_dict()["signature_checked"] is False


def test_bad_hash_when_payload_changes() -> None:
    tampered = bytearray(SIGNED)
    tampered[0x300] ^= 0x01
    result = verify_image(bytes(tampered), [KEY.public()])
    assert result.status is VerifyStatus.BAD_HASH
    assert "does not match the SHA256 TLV" in result.reason


def test_bad_hash_when_protected_tlv_changes() -> None:
    image = parse_image(SIGNED)
    offset = image.protected[0].offset + 4
    tampered = bytearray(SIGNED)
    tampered[offset] ^= 0x01
    assert verify_image(bytes(tampered)).status is VerifyStatus.BAD_HASH


def test_untrusted_key() -> None:
    result = verify_image(SIGNED, [OTHER.public()])
    assert result.status is VerifyStatus.NO_MATCHING_SIGNATURE
    assert "not trusted" in result.reason
    assert result.hash is not None


def test_key_of_another_type() -> None:
    image = parse_image(SIGNED)
    # Drop the KEYHASH so the trusted EC key is a candidate by type alone.
    stripped = with_tlvs(SIGNED, [(t.type, t.value) for t in image.protected],
                         [(t.type, t.value) for t in image.unprotected if t.type != TlvType.KEYHASH])
    result = verify_image(stripped, [EC.public()])
    assert result.status is VerifyStatus.NO_MATCHING_SIGNATURE
    assert "ED25519 signature but the trusted key(s) are ecdsa-p256" in result.reason
    assert verify_image(stripped, [EC.public(), KEY.public()]).key_index == 1


def test_forged_signature() -> None:
    image = parse_image(SIGNED)
    sig = image.unprotected[-1]
    tampered = bytearray(SIGNED)
    tampered[sig.offset + 4 + 10] ^= 0x80
    result = verify_image(bytes(tampered), [KEY.public()])
    assert result.status is VerifyStatus.NO_MATCHING_SIGNATURE
    assert "does not verify" in result.reason
    assert verify_image(bytes(tampered)).ok  # the hash alone is still fine


def test_unsigned_image_with_trusted_keys() -> None:
    unsigned = build_image(PAYLOAD, version=ImageVersion(1), header_size=0x200, pad_header=True).data
    result = verify_image(unsigned, [KEY.public()])
    assert result.status is VerifyStatus.NO_MATCHING_SIGNATURE
    assert "not signed" in result.reason


def test_pubkey_tlv_names_the_key() -> None:
    full = build_image(PAYLOAD, version=ImageVersion(1), header_size=0x200, pad_header=True, key=KEY,
                       public_key_format="full").data
    assert parse_image(full).unprotected[1].value == KEY.public().mcuboot_der
    assert verify_image(full, [OTHER.public(), KEY.public()]).key_index == 1
    assert verify_image(full, [OTHER.public()]).status is VerifyStatus.NO_MATCHING_SIGNATURE


def malformed(data: bytes, *, parses: bool = False) -> str:
    """The reason verify gives; unless the structure ``parses``, the parser must refuse it too."""
    result = verify_image(data, [KEY.public()])
    assert result.status is VerifyStatus.MALFORMED, result
    if parses:
        describe_image(data)
    else:
        with pytest.raises(FormatError):
            describe_image(data)
    return result.reason


def test_malformed_truncated_and_garbage() -> None:
    assert "truncated: 10 bytes" in malformed(SIGNED[:10])
    assert "truncated" in malformed(SIGNED[:0x300])
    assert "truncated" in malformed(SIGNED[:-1])
    assert "truncated" in malformed(SIGNED[: parse_image(SIGNED).header.tlv_offset + 2])
    assert "bad magic" in malformed(b"\x00garbage" * 100)
    assert "truncated" in malformed(b"")


def test_malformed_bad_tlv_magic() -> None:
    image = parse_image(SIGNED)
    tampered = bytearray(SIGNED)
    unprot = image.unprotected[0].offset - 4
    tampered[unprot] ^= 0xFF
    assert "bad unprotected TLV magic" in malformed(bytes(tampered))


def test_malformed_tlv_overruns_its_block() -> None:
    image = parse_image(SIGNED)
    tampered = bytearray(SIGNED)
    last = image.unprotected[-1]
    struct.pack_into("<H", tampered, last.offset + 2, len(last.value) + 1)
    assert "overruns the unprotected block" in malformed(bytes(tampered))
    tampered = bytearray(SIGNED)
    struct.pack_into("<H", tampered, image.unprotected[0].offset - 2, 0xFFF0)  # block length
    assert "truncated" in malformed(bytes(tampered))


def test_malformed_unprotected_security_counter() -> None:
    image = parse_image(SIGNED)
    moved = with_tlvs(SIGNED, [], [(TlvType.SEC_CNT, struct.pack("<I", 99)),
                                   *[(t.type, t.value) for t in image.unprotected]])
    assert "unprotected SEC_CNT TLV" in malformed(moved)
    dep = with_tlvs(SIGNED, [], [(TlvType.DEPENDENCY, bytes(12))])
    assert "unprotected DEPENDENCY TLV" in malformed(dep)


def test_malformed_protected_size_mismatch() -> None:
    tampered = bytearray(SIGNED)
    struct.pack_into("<H", tampered, 10, parse_image(SIGNED).header.protect_tlv_size + 4)
    assert "protected TLV block" in malformed(bytes(tampered))
    struct.pack_into("<H", tampered, 10, 0)
    assert "protect_tlv_size is 0" in malformed(bytes(tampered))


def test_malformed_hash_tlvs() -> None:
    image = parse_image(SIGNED)
    others = [(t.type, t.value) for t in image.unprotected if t.type != TlvType.SHA256]
    prot = [(t.type, t.value) for t in image.protected]
    assert "no SHA256" in malformed(with_tlvs(SIGNED, prot, others), parses=True)
    short = with_tlvs(SIGNED, prot, [(TlvType.SHA256, b"\x00" * 31), *others])
    assert "has 31 bytes, expected 32" in verify_image(short).reason
    assert verify_image(short).status is VerifyStatus.MALFORMED
    bad_counter = with_tlvs(SIGNED, [(TlvType.SEC_CNT, b"\x01\x02")], others)
    assert "SEC_CNT TLV at offset" in malformed(bad_counter)


def test_header_size_below_32_is_malformed() -> None:
    tampered = bytearray(SIGNED)
    struct.pack_into("<H", tampered, 8, 8)
    assert "smaller than the 32-byte header" in malformed(bytes(tampered))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_verify_never_raises_on_damage(data: st.DataObject) -> None:
    image = bytearray(SIGNED)
    mode = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if mode == "truncate":
        cut = data.draw(st.integers(0, len(image) - 1))
        result = verify_image(bytes(image[:cut]), [KEY.public()])
        assert result.status is VerifyStatus.MALFORMED
        return
    if mode == "garbage":
        blob = data.draw(st.binary(max_size=2048))
        assert verify_image(blob, [KEY.public()]).status is not VerifyStatus.OK
        return
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(image) - 1))
        image[index] ^= data.draw(st.integers(1, 255))
    result = verify_image(bytes(image), [KEY.public()])
    assert result.status is not VerifyStatus.OK or bytes(image) == SIGNED
    assert isinstance(result.reason, str)
    assert result.reason


def test_describe_image_is_json_ready() -> None:
    import json

    info = describe_image(SIGNED)
    json.dumps(info)
    assert info["format"] == "mcuboot"
    assert info["version"] == "1.2.3+4"
    assert info["hash_ok"] is True
    assert info["header"]["hdr_size"] == 0x200
    assert info["payload_size"] == len(PAYLOAD)
    assert [t["type"] for t in info["tlvs"]] == ["SEC_CNT", "SHA256", "KEYHASH", "ED25519"]
    assert [t["protected"] for t in info["tlvs"]] == [True, False, False, False]
    assert info["security_counter"] == 7


def test_header_record_replace_keeps_layout() -> None:
    header = ImageHeader.unpack(SIGNED)
    assert header._replace(img_size=1).pack()[12:16] == b"\x01\x00\x00\x00"
