"""Our DFU and DfuSe files against the field's own tools: dfu-suffix and dfuse-pack (dfu-util package).

Both directions: the tools accept and read what we write, and we read what the tools write, byte
for byte, from the shipped sample firmware.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import require_tool
from mcuota.image.dfu import add_dfu_suffix, split_dfu_file, strip_dfu_suffix, verify_dfu_suffix
from mcuota.image.dfuse import DfuseElement, DfuseTarget, build_dfuse, parse_dfuse
from mcuota.image.firmware import load_firmware, render_firmware

pytestmark = pytest.mark.interop


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, check=False)


def suffix_report(output: str) -> dict[str, int]:
    """dfu-suffix -c prints 'Vendor ID:\\t0x1209' lines; pick out the fields."""
    fields = dict(re.findall(r"^(BCD device|Product ID|Vendor ID|BCD DFU|Length|CRC):\s*(\S+)", output, re.M))
    return {key: int(value, 0) for key, value in fields.items()}


# --- dfu-suffix ------------------------------------------------------------------------------------

def test_dfu_suffix_accepts_our_suffix(sample, tmp_path: Path) -> None:
    tool = require_tool("dfu-suffix")
    payload = sample("dapboot-f103", "1.0.0", "bin").read_bytes()
    ours = add_dfu_suffix(payload, vid=0x1209, pid=0xDB42, did=0x0100)
    path = tmp_path / "app.dfu"
    path.write_bytes(ours)
    proc = run(tool, "-c", path)
    assert proc.returncode == 0, proc.stderr
    report = suffix_report(proc.stdout)
    assert report == {"BCD device": 0x0100, "Product ID": 0xDB42, "Vendor ID": 0x1209, "BCD DFU": 0x0100,
                      "Length": 16, "CRC": verify_dfu_suffix(ours).suffix.crc}


def test_dfu_suffix_rejects_our_file_once_damaged(tmp_path: Path) -> None:
    """The control: dfu-suffix -c really checks, so its acceptance above means something."""
    tool = require_tool("dfu-suffix")
    data = bytearray(add_dfu_suffix(b"\x00" * 100, vid=0x1209, pid=0xDB42))
    data[10] ^= 1
    path = tmp_path / "bad.dfu"
    path.write_bytes(bytes(data))
    assert run(tool, "-c", path).returncode != 0


def test_dfu_suffix_strips_our_suffix_to_the_original(sample, tmp_path: Path) -> None:
    tool = require_tool("dfu-suffix")
    payload = sample("mcuboot-f407", "2.0.0", "bin").read_bytes()
    path = tmp_path / "app.dfu"
    path.write_bytes(add_dfu_suffix(payload, vid=0x0483, pid=0xDF11))
    proc = run(tool, "-D", path)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == payload


@pytest.mark.parametrize("ids", [
    ("1209", "db42", "0100", None),
    ("0483", "df11", "2200", "0x011a"),
    (None, None, None, None),
])
def test_we_read_dfu_suffix_output(sample, tmp_path: Path, ids: tuple[str | None, ...]) -> None:
    vid, pid, did, spec = ids
    tool = require_tool("dfu-suffix")
    original = sample("dapboot-f103", "1.1.0", "bin").read_bytes()
    path = tmp_path / "app.bin"
    path.write_bytes(original)
    args: list[str | Path] = [tool, "-a", path]
    for flag, value in (("-v", vid), ("-p", pid), ("-d", did), ("-S", spec)):
        if value is not None:
            args += [flag, value]
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    data = path.read_bytes()
    check = verify_dfu_suffix(data)
    assert check.crc_ok
    suffix = check.suffix
    assert suffix.vid == int(vid or "ffff", 16)
    assert suffix.pid == int(pid or "ffff", 16)
    assert suffix.did == int(did or "ffff", 16)
    assert suffix.bcd_dfu == (0x011A if spec else 0x0100)
    assert strip_dfu_suffix(data) == original
    assert suffix.matches(suffix.vid, suffix.pid)


def test_dfu_suffix_accepts_our_dfuse_files(sample, tmp_path: Path) -> None:
    tool = require_tool("dfu-suffix")
    image = sample("mcuboot-f407", "1.0.0", "bin").read_bytes()
    path = tmp_path / "app.dfu"
    path.write_bytes(build_dfuse([DfuseTarget(0, (DfuseElement(0x08020200, image),), "Internal Flash")],
                                 vid=0x0483, pid=0xDF11))
    proc = run(tool, "-c", path)
    assert proc.returncode == 0, proc.stderr
    report = suffix_report(proc.stdout)
    assert (report["Vendor ID"], report["Product ID"], report["BCD DFU"]) == (0x0483, 0xDF11, 0x011A)


# --- dfuse-pack ------------------------------------------------------------------------------------

def test_we_read_dfuse_pack_multi_element_multi_target(sample, tmp_path: Path) -> None:
    tool = require_tool("dfuse-pack")
    parts = {
        ("0x08000000", 0): sample("dapboot-f103", "1.0.0", "bin"),
        ("0x08002000", 0): sample("dapboot-f103", "2.0.0", "bin"),
        ("0x08020200", 0): sample("mcuboot-f407", "1.1.0", "bin"),
        ("0x1FFFC000", 1): sample("stm32-header-f103", "1.0.1", "bin"),
        ("0x20000000", 1): sample("gizwits-f103", "1.0.0", "bin"),
    }
    args: list[str | Path] = [tool]
    for (address, alt), path in parts.items():
        args += ["-b", f"{address}@{alt}:{path}"]
    out = tmp_path / "multi.dfu"
    proc = run(*args, "-D", "0x1209:0xdb42", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = parse_dfuse(out.read_bytes())
    assert (parsed.suffix.vid, parsed.suffix.pid, parsed.suffix.bcd_dfu) == (0x1209, 0xDB42, 0x011A)
    assert parsed.image_size_with_suffix  # dfuse-pack counts the suffix in DFUImageSize
    assert [t.alternate for t in parsed.targets] == [0, 1]
    assert [t.name for t in parsed.targets] == ["ST...", "ST..."]
    got = [(t.alternate, e.address, e.data) for t in parsed.targets for e in t.elements]
    want = [(alt, int(address, 16), path.read_bytes()) for (address, alt), path in parts.items()]
    assert got == want


def test_we_read_dfuse_pack_from_intel_hex(sample, tmp_path: Path) -> None:
    tool = require_tool("dfuse-pack")
    hexes = [sample("dapboot-f103", "1.0.0", "hex"), sample("mcuboot-f407", "2.0.0", "hex")]
    out = tmp_path / "hex.dfu"
    # dfuse-pack -i imports intelhex; without Debian's python3-intelhex, run the same script under
    # this interpreter, which has intelhex (an imgtool dependency).
    proc = run(tool, *[a for h in hexes for a in ("-i", str(h))], out)
    if "IntelHex python module could not be found" in proc.stdout:
        proc = run(sys.executable, tool, *[a for h in hexes for a in ("-i", str(h))], out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = parse_dfuse(out.read_bytes())
    assert (parsed.suffix.vid, parsed.suffix.pid) == (0x0483, 0xDF11)
    got = [(e.address, e.data) for t in parsed.targets for e in t.elements]
    want = [(s.address, s.data) for h in hexes for s in load_firmware(h).segments]
    assert got == want


def test_we_read_dfuse_pack_from_our_s19(sample, tmp_path: Path) -> None:
    tool = require_tool("dfuse-pack")
    fw = load_firmware(sample("interrupt-f429", "1.0.1", "elf"))
    s19 = tmp_path / "app.s19"
    s19.write_bytes(render_firmware(fw, "srec", srec_address_bits=32))
    out = tmp_path / "s19.dfu"
    proc = run(tool, "-s", s19, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = parse_dfuse(out.read_bytes())
    assert parsed.targets[0].elements == tuple(DfuseElement(s.address, s.data) for s in fw.segments)


def test_dfuse_pack_reads_ours_byte_exact(sample, tmp_path: Path) -> None:
    tool = require_tool("dfuse-pack")
    boot = sample("dapboot-f103", "1.0.0", "bin").read_bytes()
    app = sample("dapboot-f103", "2.0.0", "bin").read_bytes()
    opt = bytes(range(16))
    ours = build_dfuse([
        DfuseTarget(0, (DfuseElement(0x08000000, boot), DfuseElement(0x08004000, app)), "Internal Flash"),
        DfuseTarget(1, (DfuseElement(0x1FFFF800, opt),), "Option Bytes"),
    ], vid=0x1209, pid=0xDB42)
    path = tmp_path / "ours.dfu"
    path.write_bytes(ours)
    proc = run(tool, "-d", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout, proc.stdout
    assert "usb: 1209:db42" in proc.stdout
    assert "Internal Flash" in proc.stdout
    assert "Option Bytes" in proc.stdout
    dumped = {
        name: (tmp_path / f"ours.dfu.{name}.bin").read_bytes()
        for name in ("target0.image0", "target0.image1", "target1.image0")
    }
    assert dumped == {"target0.image0": boot, "target0.image1": app, "target1.image0": opt}


def test_dfu_suffix_strips_a_dfuse_file_to_our_container(tmp_path: Path) -> None:
    tool = require_tool("dfu-suffix")
    ours = build_dfuse([DfuseTarget(0, (DfuseElement(0x08000000, b"\x11" * 64),))])
    path = tmp_path / "x.dfu"
    path.write_bytes(ours)
    assert run(tool, "-D", path).returncode == 0
    payload, _ = split_dfu_file(ours)
    assert path.read_bytes() == payload
    assert zlib.crc32(payload) == zlib.crc32(ours[:-16])
    assert shutil.which("dfu-suffix")
