"""The file wrappers: every firmware container in, .bin or .hex out at the right address, and verify of
either; the HEX/SREC/ELF reader is only consulted for inputs that could be one."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcuota.errors import FormatError, UsageError
from mcuota.image.firmware import load_firmware
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import BOOT_MAGIC, VerifyStatus
from mcuota.image.mcuboot.files import read_firmware_file, read_image_file, sign_file, verify_file
from mcuota.image.version import ImageVersion

KEY = generate_private_key("ed25519")
OPTIONS = {"version": ImageVersion(2), "key": KEY, "slot_size": 0x20000, "pad_header": True}


def test_read_firmware_file(sample, tmp_path: Path) -> None:
    raw, address = read_firmware_file(sample("mcuboot-f407", "2.0.0", "bin"))
    assert address is None
    for ext in ("hex", "elf"):
        data, start = read_firmware_file(sample("mcuboot-f407", "2.0.0", ext))
        assert (data, start) == (raw, 0x08020200)
    odd = tmp_path / "starts-with-S.bin"
    odd.write_bytes(b"S\x00\xff\x10" * 8)  # raw bytes that merely look like SREC at first glance
    assert read_firmware_file(odd) == (odd.read_bytes(), None)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="is empty"):
        read_firmware_file(empty)


def test_sign_file_hex_address_follows_the_input(sample, tmp_path: Path) -> None:
    out_bin, out_hex = tmp_path / "a.bin", tmp_path / "a.hex"
    built = sign_file(sample("mcuboot-f407", "2.0.0", "elf"), out_bin, header_size=0x200, confirm=True,
                      align=8, **OPTIONS)
    assert out_bin.read_bytes() == built.data
    sign_file(sample("mcuboot-f407", "2.0.0", "hex"), out_hex, header_size=0x200, confirm=True, align=8,
              **OPTIONS)
    firmware = load_firmware(out_hex)
    assert [seg.address for seg in firmware.segments] == [0x08020000, 0x08020000 + 0x20000 - 24]
    assert firmware.segments[1].data == b"\x01" + b"\xff" * 7 + BOOT_MAGIC
    assert firmware.contiguous(0xFF) == built.data
    assert verify_file(out_hex, [KEY.public()]).ok
    assert verify_file(out_bin, [KEY.public()]).ok
    moved = tmp_path / "moved.hex"
    sign_file(sample("mcuboot-f407", "2.0.0", "bin"), moved, header_size=0x200, hex_address=0x10000,
              **OPTIONS)
    assert load_firmware(moved).start == 0x10000
    with pytest.raises(UsageError, match="give --hex-addr"):
        sign_file(sample("mcuboot-f407", "2.0.0", "bin"), tmp_path / "b.hex", header_size=0x200, **OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.hex", "moved.hex"]


def test_read_image_file_leaves_non_hex_to_the_verifier(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.hex"
    bogus.write_text(":zz\n")
    assert read_image_file(bogus) == b":zz\n"
    assert verify_file(bogus).status is VerifyStatus.MALFORMED
    with pytest.raises(UsageError, match="does not exist"):
        verify_file(tmp_path / "missing.bin")
