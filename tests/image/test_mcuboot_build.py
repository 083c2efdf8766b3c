"""Building and signing MCUboot images: build -> parse round trips over the option space, the layout
rules imgtool enforces (header room, slot fit, padding), and every key type signing for real."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuota.errors import CapacityError, UsageError
from mcuota.image.keys import KEY_TYPES, PrivateKey, generate_private_key
from mcuota.image.mcuboot import (
    BOOT_MAGIC,
    Dependency,
    FlagState,
    ImageFlag,
    MagicState,
    TlvType,
    TrailerLayout,
    VerifyStatus,
    build_image,
    decode_trailer,
    parse_image,
    security_counter_for,
    trailer_size,
    verify_image,
)
from mcuota.image.version import ImageVersion

V = ImageVersion(1, 2, 3, 4)
ED25519 = generate_private_key("ed25519")

versions = st.builds(ImageVersion, st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFFFF),
                     st.integers(0, 0xFFFFFFFF))
dependencies = st.lists(st.builds(Dependency, st.integers(0, 0xFF), versions), max_size=3)


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {key_type: generate_private_key(key_type) for key_type in KEY_TYPES}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(min_size=0, max_size=3000),
    version=versions,
    header_size=st.sampled_from([32, 0x80, 0x200, 0x400]),
    signed=st.booleans(),
    key_format=st.sampled_from(["hash", "full"]),
    security_counter=st.none() | st.integers(0, 0xFFFFFFFF) | st.just("auto"),
    deps=dependencies,
    pad=st.booleans(),
    confirm=st.booleans(),
    align=st.sampled_from([1, 2, 4, 8, 16, 32]),
    erased=st.sampled_from([0x00, 0xFF]),
    overwrite_only=st.booleans(),
    load_address=st.sampled_from([0, 0x20000000]),
)
def test_build_parse_verify_round_trip(payload: bytes, version: ImageVersion, header_size: int,  # noqa: PLR0917
                                       signed: bool, key_format: str, security_counter: int | str | None,
                                       deps: list[Dependency], pad: bool, confirm: bool, align: int,
                                       erased: int, overwrite_only: bool, load_address: int) -> None:
    slot = 0x10000
    built = build_image(payload, version=version, header_size=header_size, key=ED25519 if signed else None,
                        slot_size=slot, pad_header=True, pad=pad, confirm=confirm, align=align,
                        erased_val=erased, overwrite_only=overwrite_only, security_counter=security_counter,
                        dependencies=deps, load_address=load_address,
                        public_key_format=key_format)  # type: ignore[arg-type]
    data = built.data
    image = parse_image(data)
    h = image.header
    assert (h.hdr_size, h.img_size, h.load_addr) == (header_size, len(payload), load_address)
    assert h.version == version
    assert h.version.build == version.build
    assert bool(h.flags & ImageFlag.RAM_LOAD) == bool(load_address)
    assert image.payload(data) == payload
    assert data[32:header_size] == bytes([erased]) * (header_size - 32)  # pad-header room is erased
    assert image.end == built.image_size
    expected_counter = security_counter_for(version) if security_counter == "auto" else security_counter
    assert image.security_counter == expected_counter
    assert image.dependencies == deps
    protected = [t.type for t in image.protected]
    assert protected == [TlvType.SEC_CNT] * (security_counter is not None) + [TlvType.DEPENDENCY] * len(deps)
    unprotected = [t.type for t in image.unprotected]
    key_tlv = TlvType.KEYHASH if key_format == "hash" else TlvType.PUBKEY
    assert unprotected == ([TlvType.SHA256, key_tlv, TlvType.ED25519] if signed else [TlvType.SHA256])
    assert image.find(TlvType.SHA256)[0].value == built.digest
    assert built.digest == hashlib.sha256(data[: h.hashed_size]).digest()
    result = verify_image(data, [ED25519.public()] if signed else [])
    assert result.status is VerifyStatus.OK, result.reason
    assert result.signature_checked is signed
    assert result.version == version

    if pad or confirm:
        assert len(data) == slot
        layout = TrailerLayout(slot, align, erased_val=erased, overwrite_only=overwrite_only)
        assert data[built.image_size : layout.offset] == bytes([erased]) * (layout.offset - built.image_size)
        state = decode_trailer(data, layout)
        assert state.magic is MagicState.GOOD
        assert state.image_ok is (FlagState.SET if confirm and not overwrite_only else FlagState.UNSET)
        assert state.copy_done is FlagState.UNSET
    else:
        assert len(data) == built.image_size


def test_header_room_without_pad_header() -> None:
    body = b"\x00\x50\x02\x20" + bytes(range(256)) * 4
    for room in (bytes(0x200), b"\xff" * 0x200):
        built = build_image(room + body, version=V, header_size=0x200)
        image = parse_image(built.data)
        assert image.payload(built.data) == body
        assert built.data[32:0x200] == room[32:]  # the input's room is kept, as imgtool does
    with pytest.raises(UsageError, match=r"first 0x200 bytes of the input are not empty.*--pad-header"):
        build_image(b"\x01" + bytes(0x1FF) + body, version=V, header_size=0x200)
    with pytest.raises(UsageError, match="smaller than the 0x200-byte header"):
        build_image(bytes(0x100), version=V, header_size=0x200)


def test_slot_size_boundary_and_capacity_error() -> None:
    payload = bytes(1000)
    tsize = trailer_size(align=8)
    probe = build_image(payload, version=V, header_size=0x200, key=ED25519, pad_header=True)
    exact = probe.image_size + tsize
    built = build_image(payload, version=V, header_size=0x200, key=ED25519, pad_header=True, slot_size=exact,
                        align=8, confirm=True)
    assert len(built.data) == exact
    assert built.data[-16:] == BOOT_MAGIC
    with pytest.raises(CapacityError) as info:
        build_image(payload, version=V, header_size=0x200, key=ED25519, pad_header=True,
                    slot_size=exact - 1, align=8)
    message = str(info.value)
    assert f"image of {probe.image_size} bytes" in message
    assert f"{tsize}-byte trailer" in message
    assert f"slot of {exact - 1} bytes" in message


def test_flags_and_addresses() -> None:
    ram = parse_image(build_image(b"x", version=V, header_size=32, pad_header=True,
                                  load_address=0x20001000).data).header
    assert ram.load_addr == 0x20001000
    assert ram.flags == ImageFlag.RAM_LOAD
    rom = parse_image(build_image(b"x", version=V, header_size=32, pad_header=True, rom_fixed=0x08020000,
                                  non_bootable=True).data).header
    assert rom.load_addr == 0x08020000
    assert rom.flags == ImageFlag.ROM_FIXED | ImageFlag.NON_BOOTABLE
    with pytest.raises(UsageError, match="cannot both be set"):
        build_image(b"x", version=V, header_size=32, pad_header=True, load_address=1, rom_fixed=2)


def test_security_counter_auto_and_range() -> None:
    assert security_counter_for(ImageVersion(1, 2, 3, 99)) == 0x01020003
    image = parse_image(build_image(b"x", version=ImageVersion(1, 2, 3), header_size=32, pad_header=True,
                                    security_counter="auto").data)
    assert image.security_counter == 0x01020003
    with pytest.raises(UsageError, match="security counter"):
        build_image(b"x", version=V, header_size=32, pad_header=True, security_counter=1 << 32)


def test_dependency_encoding_is_bootutils() -> None:
    dep = Dependency(1, ImageVersion(2, 3, 4, 5))
    assert dep.encode() == struct.pack("<B3xBBHI", 1, 2, 3, 4, 5)
    assert Dependency.decode(dep.encode()) == dep
    with pytest.raises(UsageError, match="image id 256"):
        build_image(b"x", version=V, header_size=32, pad_header=True,
                    dependencies=[Dependency(256, ImageVersion())])


def test_custom_tlvs_are_protected_and_range_checked() -> None:
    image = parse_image(build_image(b"x", version=V, header_size=32, pad_header=True,
                                    custom_tlvs=[(0xA0, b"vendor"), (0x1234, b"\x01\x02")]).data)
    assert [(t.type, t.value, t.protected) for t in image.protected] == [
        (0xA0, b"vendor", True), (0x1234, b"\x01\x02", True)]
    with pytest.raises(UsageError, match="vendor range"):
        build_image(b"x", version=V, header_size=32, pad_header=True, custom_tlvs=[(0x50, b"1234")])
    with pytest.raises(UsageError, match="given twice"):
        build_image(b"x", version=V, header_size=32, pad_header=True, custom_tlvs=[(0xA0, b""), (0xA0, b"")])


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"header_size": 16}, UsageError, "header size 0x10"),
    ({"header_size": 0x10000}, UsageError, "header size 0x10000"),
    ({"pad": True}, UsageError, "needs a slot size"),
    ({"align": 3, "slot_size": 0x1000}, UsageError, "alignment 3"),
    ({"erased_val": 0x55}, UsageError, "erased value"),
    ({"public_key_format": "raw"}, UsageError, "public key format"),
])
def test_bad_options(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args: dict[str, object] = {"version": V, "header_size": 0x200, "pad_header": True, **kwargs}
    with pytest.raises(error, match=message):
        build_image(b"payload", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_signs_the_sample(keys: dict[str, PrivateKey], key_type: str, sample) -> None:
    payload = Path(sample("mcuboot-f407", "2.0.0", "bin")).read_bytes()
    key = keys[key_type]
    built = build_image(payload, version=ImageVersion.parse("2.0.0"), header_size=0x200, key=key,
                        slot_size=0x20000, pad_header=True, align=8)
    image = parse_image(built.data)
    sig = image.unprotected[-1]
    assert sig.name == {"ed25519": "ED25519", "ecdsa-p256": "ECDSA_SIG", "rsa-2048": "RSA2048_PSS",
                        "rsa-3072": "RSA3072_PSS"}[key_type]
    assert len(sig.value) == {"ed25519": 64, "rsa-2048": 256, "rsa-3072": 384}.get(key_type, len(sig.value))
    assert image.unprotected[1].value == key.public().key_hash
    others = [k.public() for t, k in keys.items() if t != key_type]
    result = verify_image(built.data, [*others, key.public()])
    assert result.ok
    assert result.key_index == len(others)
    assert result.key_type == key_type


def test_ed25519_is_deterministic() -> None:
    a = build_image(b"abc" * 100, version=V, header_size=0x200, pad_header=True, key=ED25519)
    b = build_image(b"abc" * 100, version=V, header_size=0x200, pad_header=True, key=ED25519)
    assert a.data == b.data
