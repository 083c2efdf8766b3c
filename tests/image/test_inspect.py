"""``inspect_image`` names every format mcuota builds, from the bytes alone."""

from __future__ import annotations

import hashlib
import json

import pytest

from mcuota.errors import FormatError
from mcuota.image.dfu import add_dfu_suffix
from mcuota.image.dfuse import DfuseElement, DfuseTarget, build_dfuse
from mcuota.image.gizwits import build_gizwits_metadata, sidecar_json
from mcuota.image.inspect import detect_format, inspect_image
from mcuota.image.interrupt import build_interrupt_image
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import build_image
from mcuota.image.stm32_header import build_stm32_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path

V = ImageVersion.parse("2.0.0")


def _bin(target: str) -> bytes:
    return sample_path(target, "2.0.0", "bin").read_bytes()


def test_mcuboot_signed_image_is_described_with_its_version_and_tlvs():
    key = generate_private_key("ed25519")
    data = build_image(_bin("mcuboot-f407"), version=V, header_size=0x200, pad_header=True, key=key).data
    info = inspect_image(data)
    assert info["format"] == "mcuboot"
    assert info["version"] == "2.0.0"
    assert info["tlvs"]


def test_seed_formats_are_recognised_by_their_magic():
    stm32 = build_stm32_image(_bin("stm32-header-f103"), 4)
    assert detect_format(stm32) == "stm32-header"
    assert inspect_image(stm32)["version"] == 4
    intr = build_interrupt_image(_bin("interrupt-f429"), V)
    assert detect_format(intr) == "interrupt"
    sidecar = sidecar_json(build_gizwits_metadata(_bin("gizwits-f103"), "02000000")).encode()
    assert detect_format(sidecar) == "gizwits"


def test_dfu_suffix_is_unwrapped_and_its_payload_described():
    data = add_dfu_suffix(_bin("dapboot-f103"), vid=0x1209, pid=0xDB42)
    info = inspect_image(data)
    assert (info["format"], info["vid"], info["pid"], info["crc_ok"]) == ("dfu", 0x1209, 0xDB42, True)
    assert info["payload"]["format"] == "raw"
    assert info["payload"]["initial_sp"] == 0x20005000


def test_dfuse_targets_and_elements_are_listed():
    payload = _bin("dapboot-f103")
    data = build_dfuse([DfuseTarget(0, (DfuseElement(0x08002000, payload),), "Internal Flash")])
    info = inspect_image(data)
    assert info["format"] == "dfuse"
    assert info["targets"][0]["elements"][0] == {
        "address": 0x08002000, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


@pytest.mark.parametrize("ext", ["elf", "hex"])
def test_containers_report_segments_matching_the_raw_binary(ext):
    raw = inspect_image(_bin("mcuboot-f407"))
    info = inspect_image(sample_path("mcuboot-f407", "2.0.0", ext).read_bytes())
    assert info["format"] == ext
    assert info["start"] == 0x08020200
    assert info["sha256"] == raw["sha256"]
    assert json.dumps(info)  # JSON-able as `image info --json` prints it


def test_broken_mark_is_a_format_error_not_a_guess():
    key = generate_private_key("ed25519")
    data = build_image(_bin("mcuboot-f407"), version=V, header_size=0x200, pad_header=True, key=key).data
    with pytest.raises(FormatError):
        inspect_image(data[:40])
    with pytest.raises(FormatError):
        inspect_image(b"")
