"""The conversion commands as a user runs them: convert, dfu add/check/strip, dfuse pack/info.

Failure paths get the same care as happy ones: one line on stderr, exit 2 (1 for a CRC that
``dfu check`` finds wrong), no traceback, and no output file, not even a partial or temporary one.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from mcuota.image.dfu import add_dfu_suffix, verify_dfu_suffix
from mcuota.image.dfuse import DfuseElement, DfuseTarget, build_dfuse, parse_dfuse
from mcuota.image.firmware import Firmware, Segment, load_firmware, parse_firmware, render_firmware


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *, code: int = 2,
                         message: str | None = None) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mcuota: error:") or lines[0].startswith("mcuota image")
    assert "Traceback" not in proc.stderr
    if message is not None:
        assert message in lines[0], lines[0]


def only_files(directory: Path) -> list[str]:
    """Names in a directory: a failed command must leave no temporary file behind either."""
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("verb", [
    ["convert"], ["bin2c"], ["dfu"], ["dfu", "add"], ["dfu", "check"], ["dfu", "strip"],
    ["dfuse"], ["dfuse", "pack"], ["dfuse", "info"],
])
def test_every_verb_help_ends_with_an_example(mcuota, verb: list[str]) -> None:
    proc = mcuota("image", *verb, "--help")
    assert proc.returncode == 0
    lines = proc.stdout.rstrip().splitlines()
    assert lines[-2] == "example:"
    assert lines[-1].startswith("  mcuota image " + verb[0])


# --- convert ---------------------------------------------------------------------------------------

def test_convert_between_all_formats(sample, mcuota, tmp_path: Path) -> None:
    binary = sample("dapboot-f103", "1.0.1", "bin").read_bytes()
    out_bin = tmp_path / "from-hex.bin"
    proc = mcuota("image", "convert", sample("dapboot-f103", "1.0.1", "hex"), out_bin)
    assert proc.returncode == 0, proc.stderr
    assert "0x08002000" in proc.stdout
    assert out_bin.read_bytes() == binary
    out_srec = tmp_path / "from-elf.s37"
    assert mcuota("image", "convert", sample("dapboot-f103", "1.0.1", "elf"), out_srec).returncode == 0
    assert load_firmware(out_srec).segments == (Segment(0x08002000, binary),)
    out_hex = tmp_path / "from-bin.hex"
    proc = mcuota("image", "convert", sample("dapboot-f103", "1.0.1", "bin"), out_hex,
                  "--load-address", "0x08002000", "--record-size", "16")
    assert proc.returncode == 0, proc.stderr
    assert load_firmware(out_hex).segments == (Segment(0x08002000, binary),)
    assert max(len(line) for line in out_hex.read_text().splitlines()) == 1 + 2 * (5 + 16)


def test_convert_fills_gaps_and_selects_ranges(mcuota, tmp_path: Path) -> None:
    fw = Firmware((Segment(0x08000000, b"\x01" * 8), Segment(0x08000010, b"\x02" * 4),
                   Segment(0x1FFFF800, b"\xa5" * 16)))
    src = tmp_path / "gappy.hex"
    src.write_bytes(render_firmware(fw, "hex"))
    out = tmp_path / "out.bin"
    proc = mcuota("image", "convert", src, out, "--end", "0x08010000", "--fill", "0x00")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == b"\x01" * 8 + b"\x00" * 8 + b"\x02" * 4
    proc = mcuota("image", "convert", src, tmp_path / "opt.srec", "--start", "0x1FFFF800")
    assert proc.returncode == 0
    assert load_firmware(tmp_path / "opt.srec").segments == (Segment(0x1FFFF800, b"\xa5" * 16),)
    proc = mcuota("image", "convert", src, tmp_path / "all.bin")
    assert_clean_failure(proc, message="too large for one binary")
    assert not (tmp_path / "all.bin").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["{src}", "{out}.elf"], "use .bin, .hex or .srec"),
    (["{src}", "{out}.txt"], "cannot tell the output format"),
    (["{missing}", "{out}.bin"], "does not exist"),
    (["{bad}", "{out}.bin"], "checksum"),
    (["{src}", "{out}.bin", "--start", "0x30000000"], "no data between"),
    (["{src}", "{out}.hex", "--record-size", "300"], "1-255 data bytes"),
])
def test_convert_failures(mcuota, tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "in.hex"
    src.write_bytes(render_firmware(Firmware((Segment(0x08000000, b"\x01" * 8),)), "hex"))
    bad = tmp_path / "bad.hex"
    bad.write_text(":0400000001020304F3\n:00000001FF\n")
    names = {"src": src, "out": tmp_path / "out", "missing": tmp_path / "nope.hex", "bad": bad}
    before = only_files(tmp_path)
    proc = mcuota("image", "convert", *[a.format(**names) for a in args])
    assert_clean_failure(proc, message=message)
    assert only_files(tmp_path) == before


def test_bad_fill_is_a_usage_error(mcuota, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    assert_clean_failure(mcuota("image", "convert", src, tmp_path / "b.bin", "--fill", "0x100"),
                         message="not a byte value")


# --- dfu add / check / strip -----------------------------------------------------------------------

def test_dfu_add_check_strip(sample, mcuota, tmp_path: Path) -> None:
    original = sample("dapboot-f103", "2.0.0", "bin")
    dfu = tmp_path / "app.dfu"
    proc = mcuota("image", "dfu", "add", original, dfu, "--vid", "1209", "--pid", "0xDB42", "--did", "0200")
    assert proc.returncode == 0, proc.stderr
    suffix = verify_dfu_suffix(dfu.read_bytes()).suffix
    assert (suffix.vid, suffix.pid, suffix.did, suffix.bcd_dfu) == (0x1209, 0xDB42, 0x0200, 0x0100)

    proc = mcuota("image", "dfu", "check", dfu)
    assert proc.returncode == 0
    assert "0x1209" in proc.stdout
    assert "0xdb42" in proc.stdout
    assert " ok" in proc.stdout
    report = json.loads(mcuota("image", "dfu", "check", dfu, "--json").stdout)
    assert report["vid"] == 0x1209
    assert report["pid"] == 0xDB42
    assert report["did"] == 0x0200
    assert report["crc_ok"] is True
    assert report["dfuse"] is False
    assert report["payload_length"] == len(original.read_bytes())

    stripped = tmp_path / "back.bin"
    assert mcuota("image", "dfu", "strip", dfu, stripped).returncode == 0
    assert stripped.read_bytes() == original.read_bytes()


def test_dfu_add_converts_hex_and_defaults_to_wildcards(sample, mcuota, tmp_path: Path) -> None:
    dfu = tmp_path / "app.dfu"
    proc = mcuota("image", "dfu", "add", sample("mcuboot-f407", "1.0.0", "hex"), dfu)
    assert proc.returncode == 0, proc.stderr
    assert "(from hex)" in proc.stdout
    assert "ffff:ffff" in proc.stdout
    assert dfu.read_bytes()[:-16] == sample("mcuboot-f407", "1.0.0", "bin").read_bytes()


def test_dfu_check_bad_crc_exits_1_and_strip_refuses(mcuota, tmp_path: Path) -> None:
    data = bytearray(add_dfu_suffix(b"\x42" * 300, vid=0x1209, pid=0xDB42))
    data[7] ^= 0x10
    bad = tmp_path / "bad.dfu"
    bad.write_bytes(bytes(data))
    proc = mcuota("image", "dfu", "check", bad)
    assert proc.returncode == 1
    assert "MISMATCH" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert json.loads(mcuota("image", "dfu", "check", bad, "--json").stdout)["crc_ok"] is False
    out = tmp_path / "out.bin"
    assert_clean_failure(mcuota("image", "dfu", "strip", bad, out), message="does not match")
    assert not out.exists()
    assert only_files(tmp_path) == ["bad.dfu"]
    assert mcuota("image", "dfu", "strip", bad, out, "--no-verify").returncode == 0
    assert out.read_bytes() == bytes(data[:-16])


@pytest.mark.parametrize(("content", "message"), [
    (add_dfu_suffix(b"\x01" * 64)[:-3], "not b'UFD'"),        # truncated suffix
    (b"\x01" * 10, "too short for a DFU suffix"),
    (b"\x01" * 64, "no DFU suffix"),                          # wrong signature
])
def test_dfu_bad_input_is_one_line_exit_2(mcuota, tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "in.dfu"
    src.write_bytes(content)
    assert_clean_failure(mcuota("image", "dfu", "check", src), message=message)
    assert_clean_failure(mcuota("image", "dfu", "strip", src, tmp_path / "out.bin"), message=message)
    assert only_files(tmp_path) == ["in.dfu"]


def test_dfu_add_refusals(mcuota, tmp_path: Path) -> None:
    once = tmp_path / "once.dfu"
    once.write_bytes(add_dfu_suffix(b"\x01" * 32))
    out = tmp_path / "twice.dfu"
    assert_clean_failure(mcuota("image", "dfu", "add", once, out), message="already has a DFU suffix")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x01" * 32)
    assert_clean_failure(mcuota("image", "dfu", "add", plain, out, "--dfuse"), message="DfuSe container")
    assert_clean_failure(mcuota("image", "dfu", "add", plain, out, "--vid", "12345"), message="USB ID")
    container = tmp_path / "container.bin"
    container.write_bytes(build_dfuse([DfuseTarget(0, (DfuseElement(0, b"x"),))])[:-16])
    assert_clean_failure(mcuota("image", "dfu", "add", container, out), message="add --dfuse")
    broken = tmp_path / "broken.bin"
    broken.write_bytes(container.read_bytes()[:-1])
    assert_clean_failure(mcuota("image", "dfu", "add", broken, out, "--dfuse"),
                         message="not a valid DfuSe container")
    assert not out.exists()


def test_dfuse_strip_and_re_add_reproduce_the_file(mcuota, tmp_path: Path) -> None:
    original = build_dfuse([DfuseTarget(0, (DfuseElement(0x08000000, b"\x07" * 100),), "Internal Flash")])
    src = tmp_path / "st.dfu"
    src.write_bytes(original)
    container = tmp_path / "st.raw"
    assert mcuota("image", "dfu", "strip", src, container).returncode == 0
    again = tmp_path / "again.dfu"
    proc = mcuota("image", "dfu", "add", container, again, "--dfuse")
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == original
    report = json.loads(mcuota("image", "dfu", "check", again, "--json").stdout)
    assert report["dfuse"] is True
    assert report["bcd_dfu"] == 0x011A


# --- dfuse pack / info -----------------------------------------------------------------------------

def test_dfuse_pack_and_info(sample, mcuota, tmp_path: Path) -> None:
    boot = sample("dapboot-f103", "1.0.0", "bin")
    app_hex = sample("mcuboot-f407", "1.0.0", "hex")
    opt = tmp_path / "opt.bin"
    opt.write_bytes(bytes(range(16)))
    out = tmp_path / "multi.dfu"
    proc = mcuota("image", "dfuse", "pack", out, "--element", f"0x08000000:{boot}", "--element", str(app_hex),
                  "--element", f"0x1FFFF800@1:{opt}", "--name", "Internal Flash", "--name", "1=Option Bytes",
                  "--vid", "1209", "--pid", "db42")
    assert proc.returncode == 0, proc.stderr
    assert "2 target(s), 3 element(s)" in proc.stdout
    parsed = parse_dfuse(out.read_bytes())
    assert (parsed.suffix.vid, parsed.suffix.pid) == (0x1209, 0xDB42)
    assert [(t.alternate, t.name) for t in parsed.targets] == [(0, "Internal Flash"), (1, "Option Bytes")]
    hex_fw = load_firmware(app_hex)
    assert parsed.targets[0].elements == (
        DfuseElement(0x08000000, boot.read_bytes()), DfuseElement(hex_fw.start, hex_fw.contiguous()))
    assert parsed.targets[1].elements == (DfuseElement(0x1FFFF800, bytes(range(16))),)

    proc = mcuota("image", "dfuse", "info", out)
    assert proc.returncode == 0
    assert "alternate 1, name 'Option Bytes'" in proc.stdout
    assert "0x1ffff800-0x1ffff810 (16 bytes)" in proc.stdout
    info = json.loads(mcuota("image", "dfuse", "info", out, "--json").stdout)
    assert info["crc_ok"] is True
    assert info["vid"] == 0x1209
    assert [e["address"] for t in info["targets"] for e in t["elements"]] == [
        0x08000000, hex_fw.start, 0x1FFFF800]


def test_dfuse_pack_relocates_hex_with_address(sample, mcuota, tmp_path: Path) -> None:
    out = tmp_path / "moved.dfu"
    src = sample("dapboot-f103", "1.0.0", "hex")
    assert mcuota("image", "dfuse", "pack", out, "--element", f"0x08004000:{src}").returncode == 0
    element = parse_dfuse(out.read_bytes()).targets[0].elements[0]
    assert element.address == 0x08004000
    assert element.data == parse_firmware(src.read_bytes()).contiguous()


@pytest.mark.parametrize(("elements", "extra", "message"), [
    (["{raw}"], [], "give its address"),
    (["0x100:{raw}", "0x102:{raw}"], [], "overlap at 0x00000102"),
    (["0x100:{dfu}"], [], "already has a DFU suffix"),
    (["zz:{raw}"], [], "invalid number"),
    (["0x100@300:{raw}"], [], "alternate setting 300"),
    (["0x100:{raw}"], ["--name", "2=Nowhere"], "alternate setting 2, which has no elements"),
    (["0x100:{raw}"], ["--name", "x" * 300], "at most 254"),
    (["0x100:{missing}"], [], "does not exist"),
])
def test_dfuse_pack_failures(mcuota, tmp_path: Path, elements: list[str], extra: list[str],
                             message: str) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x01\x02\x03\x04")
    dfu = tmp_path / "has-suffix.bin"
    dfu.write_bytes(add_dfu_suffix(b"\x01\x02\x03\x04"))
    out = tmp_path / "out.dfu"
    out.write_bytes(b"previous")
    names = {"raw": raw, "dfu": dfu, "missing": tmp_path / "missing.bin"}
    args = [a for e in elements for a in ("--element", e.format(**names))]
    before = only_files(tmp_path)
    assert_clean_failure(mcuota("image", "dfuse", "pack", out, *args, *extra), message=message)
    assert out.read_bytes() == b"previous"
    assert only_files(tmp_path) == before


def corrupt(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    body = bytearray(data[:-16])
    struct.pack_into(fmt, body, offset, value)
    return add_dfu_suffix(bytes(body), bcd_dfu=0x011A, allow_existing=True)


GOOD = build_dfuse([DfuseTarget(0, (DfuseElement(0x08000000, b"\x01" * 40),))])


@pytest.mark.parametrize(("content", "message"), [
    (corrupt(GOOD, 0, "<5s", b"DfuSx"), "not a DfuSe file"),                     # bad prefix
    (corrupt(GOOD, 6, "<I", 7), "offset 6 gives image size 7"),                   # prefix length
    (corrupt(GOOD, 11 + 266, "<I", 4000), "target 0 at offset 11 claims 4000"),   # target length
    (corrupt(GOOD, 11 + 274 + 4, "<I", 41), "claims 41 bytes"),                    # element length
    (GOOD[:-1] + b"\x00", "CRC"),                                                  # bad CRC
    (GOOD[:-5], "not b'UFD'"),                                                     # truncated suffix
    (b"", "too short"),
])
def test_dfuse_info_bad_input(mcuota, tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "in.dfu"
    src.write_bytes(content)
    assert_clean_failure(mcuota("image", "dfuse", "info", src), message=message)
    assert_clean_failure(mcuota("image", "dfuse", "info", src, "--json"), message=message)


def test_dfuse_info_can_read_past_a_bad_crc(mcuota, tmp_path: Path) -> None:
    src = tmp_path / "in.dfu"
    src.write_bytes(GOOD[:-1] + b"\x00")
    proc = mcuota("image", "dfuse", "info", src, "--no-verify")
    assert proc.returncode == 0
    assert "MISMATCH" in proc.stdout
