"""Firmware containers: round trips between HEX, SREC and BIN, the shipped samples, and strict
rejection of damaged record files (an OTA pipeline must never flash half a file)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_tool
from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.image.firmware import (
    Firmware,
    Segment,
    detect_kind,
    load_firmware,
    output_kind_for,
    parse_firmware,
    render_firmware,
)
from mcuota.samples import RELEASES, TARGETS

LINK_ADDRESSES = {"dapboot-f103": 0x08002000, "mcuboot-f407": 0x08020200}


# --- hand-made records (independent of the module's writer) -----------------------------------------

def ihex(rtype: int, offset: int, payload: bytes = b"") -> str:
    body = bytes([len(payload), offset >> 8, offset & 0xFF, rtype]) + payload
    return ":" + body.hex().upper() + f"{(-sum(body)) & 0xFF:02X}"


def srec(rtype: int, address: int, payload: bytes = b"", alen: int = 4) -> str:
    body = bytes([alen + len(payload) + 1]) + address.to_bytes(alen, "big") + payload
    return f"S{rtype}" + body.hex().upper() + f"{0xFF - (sum(body) & 0xFF):02X}"


EOF = ihex(1, 0)


def hex_text(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# --- strategies ------------------------------------------------------------------------------------

@st.composite
def firmwares(draw: st.DrawFn, max_segments: int = 5) -> Firmware:
    """Non-overlapping, non-adjacent segments, sometimes straddling 64 KiB boundaries."""
    count = draw(st.integers(1, max_segments))
    sizes = draw(st.lists(st.integers(1, 300), min_size=count, max_size=count))
    gaps = draw(st.lists(st.integers(1, 5000), min_size=count - 1, max_size=count - 1))
    span = sum(sizes) + sum(gaps)
    start = draw(st.one_of(
        st.integers(0, (1 << 32) - span),
        st.sampled_from([0, 0xFF00, 0x0800FF80, 0x08000000, 0x20000000, (1 << 32) - span]),
    ))
    segments = []
    address = start
    for index, size in enumerate(sizes):
        segments.append(Segment(address, draw(st.binary(min_size=size, max_size=size))))
        address += size + (gaps[index] if index < len(gaps) else 0)
    entry = draw(st.one_of(st.none(), st.integers(0, (1 << 32) - 1)))
    return Firmware(tuple(segments), entry)


@settings(max_examples=150, deadline=None)
@given(firmwares(), st.integers(1, 255))
def test_hex_round_trip(fw: Firmware, record_size: int) -> None:
    back = parse_firmware(render_firmware(fw, "hex", record_size=record_size))
    assert back.segments == fw.segments
    assert back.entry == fw.entry
    assert back.source_kind == "hex"


@settings(max_examples=150, deadline=None)
@given(firmwares(), st.integers(1, 250), st.sampled_from([None, 32]))
def test_srec_round_trip(fw: Firmware, record_size: int, bits: int | None) -> None:
    back = parse_firmware(render_firmware(fw, "srec", record_size=record_size, srec_address_bits=bits))
    assert back.segments == fw.segments
    assert back.entry == (fw.entry or 0)  # SREC always has a termination address


@settings(max_examples=100, deadline=None)
@given(firmwares(), st.integers(0, 255))
def test_hex_to_bin_to_srec_keeps_bytes_and_fills_gaps(fw: Firmware, fill: int) -> None:
    from_hex = parse_firmware(render_firmware(fw, "hex"))
    binary = render_firmware(from_hex, "bin", fill=fill)
    assert len(binary) == fw.end - fw.start
    for seg in fw.segments:
        assert binary[seg.address - fw.start : seg.end - fw.start] == seg.data
    gap_bytes = set(binary) if len(fw.segments) == 1 else None
    if gap_bytes is None:
        first, second = fw.segments[0], fw.segments[1]
        assert set(binary[first.end - fw.start : second.address - fw.start]) == {fill}
    from_bin = parse_firmware(binary, load_address=fw.start)
    from_srec = parse_firmware(render_firmware(from_bin, "srec"))
    assert from_srec.segments == (Segment(fw.start, binary),)


# --- the shipped samples ---------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("release", RELEASES)
def test_elf_and_hex_equal_the_bin(sample, target: str, release: str) -> None:
    binary = sample(target, release, "bin").read_bytes()
    elf = load_firmware(sample(target, release, "elf"))
    hexf = load_firmware(sample(target, release, "hex"))
    assert elf.contiguous() == binary
    assert hexf.contiguous() == binary
    assert elf.start == hexf.start
    assert (elf.source_kind, hexf.source_kind) == ("elf", "hex")
    if target in LINK_ADDRESSES:
        assert elf.start == LINK_ADDRESSES[target]
    assert hexf.entry == elf.entry


def test_sample_hex_rewritten_parses_to_the_same_segments(sample) -> None:
    original = load_firmware(sample("dapboot-f103", "2.0.0", "hex"))
    for record_size in (16, 32, 255):
        rewritten = parse_firmware(render_firmware(original, "hex", record_size=record_size))
        assert rewritten.segments == original.segments


def test_bin_with_load_address_and_relocated_hex(sample) -> None:
    binary = sample("dapboot-f103", "1.0.0", "bin").read_bytes()
    fw = parse_firmware(binary, load_address=0x08002000)
    assert fw.start == 0x08002000
    assert fw.contiguous() == binary
    moved = load_firmware(sample("dapboot-f103", "1.0.0", "hex"), load_address=0x08004000)
    assert moved.start == 0x08004000
    assert moved.contiguous() == binary
    assert moved.entry == 0x08002040 + 0x2000


# --- damaged and hostile input ---------------------------------------------------------------------

def test_overlapping_hex_records_name_the_address() -> None:
    text = hex_text(ihex(4, 0, b"\x08\x00"), ihex(0, 0x0100, bytes(8)), ihex(0, 0x0104, b"\xaa" * 4), EOF)
    with pytest.raises(FormatError, match=r"0x08000104.*line 2"):
        parse_firmware(text)


def test_duplicate_hex_record_is_an_overlap() -> None:
    record = ihex(0, 0x10, b"\x01\x02")
    with pytest.raises(FormatError, match="0x00000010"):
        parse_firmware(hex_text(record, record, EOF))


def test_overlapping_srec_records_name_the_address() -> None:
    text = hex_text(srec(3, 0x20000000, bytes(16)), srec(3, 0x2000000F, b"\x01"), srec(7, 0, alen=4))
    with pytest.raises(FormatError, match="0x2000000F"):
        parse_firmware(text)


@pytest.mark.parametrize(("text", "message"), [
    (hex_text(":0400000001020304F3", EOF), r"line 1: checksum 0xF3 should be 0xF2"),
    (hex_text(":04000000010203", EOF), r"line 1: .*count says 4"),
    (hex_text(":0400000001020304F", EOF), r"line 1: not an even number of hex digits"),
    (hex_text(":04000000010G0304F2", EOF), r"line 1: not an even number of hex digits"),
    (hex_text(ihex(0, 0, b"\x01"), "hello", EOF), r"line 2: not an Intel HEX record"),
    (hex_text(":00", EOF), r"line 1: record too short"),
    (hex_text(ihex(0, 0, b"\x01")), r"no end-of-file record"),
    (hex_text(ihex(0, 0, b"\x01"), EOF, ihex(0, 4, b"\x02")), r"line 3: record after the end-of-file"),
    (hex_text(ihex(6, 0, b"\x01"), EOF), r"unknown record type 0x06"),
    (hex_text(ihex(4, 0, b"\x08"), EOF), r"extended address record with 1 bytes"),
    (hex_text(EOF), r"contains no data records"),
    (b":0400000001020304F2\n:00000001FF\n\xff\n", r"byte 0xff at offset 32"),
])
def test_damaged_hex_is_a_format_error(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_firmware(text, kind="hex", name="app.hex")


def test_hex_truncated_anywhere_is_rejected(sample) -> None:
    text = sample("dapboot-f103", "1.0.0", "hex").read_bytes()
    for cut in (len(text) // 3, len(text) // 2 + 7, len(text) - 5):
        with pytest.raises(FormatError):
            parse_firmware(text[:cut])


@pytest.mark.parametrize(("text", "message"), [
    (hex_text(srec(1, 0, b"\x01", 2)[:-2] + "00", srec(9, 0, alen=2)), r"line 1: checksum"),
    (hex_text("S107000001020304", srec(9, 0, alen=2)), r"line 1: .*count says 7"),
    (hex_text(srec(1, 0, b"\x01", 2)), r"no count \(S5/S6\) or termination"),
    (hex_text(srec(1, 0, b"\x01", 2), srec(5, 2, alen=2), srec(9, 0, alen=2)), r"record count says 2"),
    (hex_text(srec(1, 0, b"\x01", 2), srec(9, 0, alen=2), srec(1, 1, b"\x02", 2)), r"line 3: .*after"),
    (hex_text(srec(4, 0, b"", 2), srec(9, 0, alen=2)), r"unknown record type S4"),
    (hex_text(srec(1, 0, b"\x01", 2), "Sx", srec(9, 0, alen=2)), r"line 2: unknown record type Sx"),
])
def test_damaged_srec_is_a_format_error(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_firmware(text, kind="srec")


def test_srec_ending_in_a_count_record_is_complete() -> None:
    """srec_cat writes S5 and no S7 when there is no entry point."""
    fw = parse_firmware(hex_text(srec(3, 0x100, b"\x01\x02"), srec(5, 1, alen=2)))
    assert fw.segments == (Segment(0x100, b"\x01\x02"),)
    assert fw.entry is None


def test_empty_input_is_a_format_error_whatever_the_name() -> None:
    for name in (None, "app.bin", "app.hex", "app.elf"):
        with pytest.raises(FormatError, match="is empty"):
            parse_firmware(b"", name=name)


def test_content_contradicting_the_suffix_is_refused() -> None:
    with pytest.raises(FormatError, match=r"has a \.hex name"):
        parse_firmware(b"\x00\x01\x02", name="app.hex")
    assert detect_kind(b"\x00\x01\x02", "app.bin") == "bin"


def test_truncated_and_garbage_elf(sample) -> None:
    elf = sample("dapboot-f103", "1.0.0", "elf").read_bytes()
    for data in (elf[:40], elf[:200], elf[: len(elf) // 2], b"\x7fELF" + b"\x00" * 60):
        with pytest.raises(FormatError, match="ELF"):
            parse_firmware(data, name="app.elf")


def test_segment_and_start_records() -> None:
    text = hex_text(ihex(2, 0, b"\x10\x00"), ihex(0, 0x0010, b"\xab\xcd"),
                    ihex(3, 0, b"\x12\x34\x00\x10"), EOF)
    fw = parse_firmware(text)
    assert fw.segments == (Segment(0x10010, b"\xab\xcd"),)
    assert fw.entry == 0x12340 + 0x10


def test_hex_records_never_cross_64k() -> None:
    fw = Firmware((Segment(0xFFF0, bytes(range(64))),))
    text = render_firmware(fw, "hex", record_size=255).decode()
    assert ":020000040001F9" in text
    assert parse_firmware(text.encode()).segments == fw.segments


# --- helpers and writer options --------------------------------------------------------------------

def test_from_segments_merges_and_refuses_overlap() -> None:
    fw = Firmware.from_segments([Segment(10, b"cd"), Segment(8, b"ab"), Segment(20, b"x")])
    assert fw.segments == (Segment(8, b"abcd"), Segment(20, b"x"))
    with pytest.raises(FormatError, match="0x00000009"):
        Firmware.from_segments([Segment(8, b"ab"), Segment(9, b"c")])


def test_crop_and_relocate() -> None:
    fw = Firmware((Segment(0x100, b"abcd"), Segment(0x200, b"efgh")), entry=0x101)
    assert fw.crop(0x102, 0x202).segments == (Segment(0x102, b"cd"), Segment(0x200, b"ef"))
    assert fw.crop(0x104, 0x200).segments == ()
    assert fw.crop(start=0x300).segments == ()
    assert fw.crop(end=0x50).segments == ()
    assert fw.crop(start=0x202).segments == (Segment(0x202, b"gh"),)
    assert fw.relocate(0x1100).segments[1] == Segment(0x1200, b"efgh")
    assert fw.relocate(0x1100).entry == 0x1101
    with pytest.raises(UsageError):
        fw.crop(0x200, 0x100)
    with pytest.raises(UsageError):
        fw.relocate((1 << 32) - 2)


def test_writer_limits() -> None:
    fw = Firmware((Segment(0x08000000, b"\x01" * 10),))
    with pytest.raises(UsageError, match="1-255"):
        render_firmware(fw, "hex", record_size=256)
    with pytest.raises(UsageError, match="16-bit"):
        render_firmware(fw, "srec", srec_address_bits=16)
    assert render_firmware(fw, "srec", srec_address_bits=32).startswith(b"S0030000FC\nS3")
    assert render_firmware(Firmware((Segment(0x100, b"\x01"),)), "srec").splitlines()[1].startswith(b"S1")
    far = Firmware((Segment(0x08000000, b"\x01"), Segment(0x20000000, b"\x02")))
    with pytest.raises(CapacityError, match="too large"):
        render_firmware(far, "bin")
    with pytest.raises(UsageError, match="not a byte"):
        render_firmware(fw, "bin", fill=0x100)
    with pytest.raises(UsageError, match=r"use \.bin, \.hex or \.srec"):
        output_kind_for("out.elf")
    assert output_kind_for("x.S19") == "srec"


# --- srec_cat agrees -------------------------------------------------------------------------------

@pytest.mark.interop
def test_srec_cat_reads_our_hex_and_srec(sample, tmp_path: Path) -> None:
    srec_cat = require_tool("srec_cat")
    fw = Firmware((Segment(0x0800FFF0, bytes(range(200))), Segment(0x08010400, b"\x55" * 77)), 0x0800FFF1)
    expected = fw.contiguous(0xFF)
    for kind, flag in (("hex", "-intel"), ("srec", "-motorola")):
        src = tmp_path / f"ours.{kind}"
        src.write_bytes(render_firmware(fw, kind, record_size=16))  # type: ignore[arg-type]
        out = tmp_path / f"{kind}.bin"
        subprocess.run([srec_cat, str(src), flag, "-offset", f"-{fw.start:#x}", "-fill", "0xff", "0",
                        str(len(expected)), "-o", str(out), "-binary"], check=True, capture_output=True)
        assert out.read_bytes() == expected


@pytest.mark.interop
def test_we_read_srec_cat_output(sample, tmp_path: Path) -> None:
    srec_cat = require_tool("srec_cat")
    binary = sample("mcuboot-f407", "1.1.0", "bin")
    data = binary.read_bytes()
    for flag, ext in (("-intel", "hex"), ("-motorola", "srec")):
        out = tmp_path / f"tool.{ext}"
        subprocess.run([srec_cat, str(binary), "-binary", "-offset", "0x08020200", "-o", str(out), flag],
                       check=True, capture_output=True)
        fw = load_firmware(out)
        assert fw.segments == (Segment(0x08020200, data),)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_records_fail_only_with_format_error(data: st.DataObject) -> None:
    """A character of a valid HEX/SREC file changed: a clean parse or a FormatError, nothing else."""
    fw = Firmware((Segment(0x08000000, bytes(range(100))), Segment(0x08000200, b"\x01" * 40)), 0x08000001)
    kind = data.draw(st.sampled_from(["hex", "srec"]))
    text = bytearray(render_firmware(fw, kind, record_size=16))
    text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.sampled_from(b"0123456789ABCDEF:S\n x"))
    with contextlib.suppress(FormatError):
        parse_firmware(bytes(text), kind=kind)
