"""ST DfuSe files: exact layout, build→parse round trips, every length checked with the offset named,
and the memory-layout string the USB DFU host plans its erases from."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuota.errors import FormatError, UsageError
from mcuota.image.dfu import add_dfu_suffix, verify_dfu_suffix
from mcuota.image.dfuse import (
    DfuseElement,
    DfuseTarget,
    build_dfuse,
    elements_from_segments,
    looks_like_dfuse,
    parse_dfuse,
    parse_memory_layout,
)

# Offsets in a file whose first target is at 11: its size field, element count, first element.
TARGET0 = 11
TARGET0_SIZE = TARGET0 + 6 + 1 + 4 + 255
TARGET0_COUNT = TARGET0_SIZE + 4
ELEMENT0 = TARGET0_COUNT + 4


def sample_file() -> bytes:
    return build_dfuse([
        DfuseTarget(0, (DfuseElement(0x08000000, b"boot" * 10), DfuseElement(0x08004000, b"app" * 7)),
                    "Internal Flash"),
        DfuseTarget(1, (DfuseElement(0x1FFFC000, b"\xaa\x55"),)),
    ], vid=0x1209, pid=0xDB42, did=0x0100)


def reseal(body: bytes, *, bcd: int = 0x011A) -> bytes:
    """A new suffix over edited bytes, so that the structure (not the CRC) is what fails."""
    return add_dfu_suffix(body, vid=0x1209, pid=0xDB42, bcd_dfu=bcd, allow_existing=True)


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    body = bytearray(data[:-16])
    struct.pack_into(fmt, body, offset, value)
    return reseal(bytes(body))


def test_layout_is_byte_exact() -> None:
    data = sample_file()
    body = data[:-16]
    assert struct.unpack_from("<5sBIB", body) == (b"DfuSe", 1, len(body), 2)
    sig, alt, named, name, size, count = struct.unpack_from("<6sBI255sII", body, TARGET0)
    assert (sig, alt, named, count) == (b"Target", 0, 1, 2)
    assert name.rstrip(b"\0") == b"Internal Flash"
    assert size == (8 + 40) + (8 + 21)
    assert struct.unpack_from("<II", body, ELEMENT0) == (0x08000000, 40)
    assert body[ELEMENT0 + 8 : ELEMENT0 + 48] == b"boot" * 10
    second = TARGET0 + 274 + size
    assert struct.unpack_from("<6sBI", body, second) == (b"Target", 1, 0)
    suffix = verify_dfu_suffix(data)
    assert suffix.crc_ok
    assert (suffix.suffix.vid, suffix.suffix.pid, suffix.suffix.did, suffix.suffix.bcd_dfu) == (
        0x1209, 0xDB42, 0x0100, 0x011A)


def test_defaults_to_st_bootloader_ids() -> None:
    parsed = parse_dfuse(build_dfuse([DfuseTarget(0, (DfuseElement(0, b"x"),))]))
    assert (parsed.suffix.vid, parsed.suffix.pid, parsed.suffix.bcd_dfu) == (0x0483, 0xDF11, 0x011A)


def test_parse_reads_back_targets_and_elements() -> None:
    parsed = parse_dfuse(sample_file())
    assert [t.alternate for t in parsed.targets] == [0, 1]
    assert parsed.targets[0].name == "Internal Flash"
    assert parsed.targets[1].name is None
    assert parsed.target(1).elements == (DfuseElement(0x1FFFC000, b"\xaa\x55"),)
    assert parsed.targets[0].elements[1].end == 0x08004000 + 21
    assert not parsed.image_size_with_suffix
    with pytest.raises(UsageError, match="alternate setting 5"):
        parsed.target(5)
    assert looks_like_dfuse(sample_file())
    assert not looks_like_dfuse(add_dfu_suffix(b"DfuSe" + bytes(20)))


def test_image_size_counting_the_suffix_is_accepted() -> None:
    """dfuse-pack writes DFUImageSize including the 16-byte suffix; UM0391 readers exclude it."""
    data = sample_file()
    parsed = parse_dfuse(patch(data, 6, "<I", len(data)))
    assert parsed.image_size_with_suffix
    assert parsed.targets == parse_dfuse(data).targets


target_names = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                               max_size=254))


@st.composite
def targets(draw: st.DrawFn) -> DfuseTarget:
    count = draw(st.integers(1, 4))
    address = draw(st.integers(0, 0xF0000000))
    elements = []
    for _ in range(count):
        data = draw(st.binary(max_size=200))
        elements.append(DfuseElement(address, data))
        address += len(data) + draw(st.integers(0, 4096))
    return DfuseTarget(draw(st.integers(0, 255)), tuple(elements), draw(target_names))


@settings(max_examples=150, deadline=None)
@given(st.lists(targets(), min_size=1, max_size=5), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFF))
def test_build_parse_round_trip(built: list[DfuseTarget], vid: int, pid: int, did: int) -> None:
    parsed = parse_dfuse(build_dfuse(built, vid=vid, pid=pid, did=did))
    assert parsed.targets == tuple(built)
    assert (parsed.suffix.vid, parsed.suffix.pid, parsed.suffix.did) == (vid, pid, did)


# --- damaged files: one FormatError naming the offset ----------------------------------------------

def test_bad_crc_is_refused_unless_asked() -> None:
    data = bytearray(sample_file())
    data[ELEMENT0 + 9] ^= 0xFF
    with pytest.raises(FormatError, match="CRC"):
        parse_dfuse(bytes(data))
    assert parse_dfuse(bytes(data), verify_crc=False).targets[0].elements[0].data[1:2] != b"o"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: reseal(b"DfuSX" + d[5:-16]), r"offset 0 holds b'DfuSX'"),
    (lambda d: patch(d, 5, "<B", 2), r"version 2 at offset 5"),
    (lambda d: patch(d, 6, "<I", 12345), r"offset 6 gives image size 12345"),
    (lambda d: patch(d, 10, "<B", 3), r"target 2 at offset \d+ is truncated"),
    (lambda d: patch(d, 10, "<B", 1), r"unexpected bytes at offset \d+"),
    (lambda d: patch(d, TARGET0, "<6s", b"Targxt"), rf"target 0 at offset {TARGET0}: signature"),
    (lambda d: patch(d, TARGET0_SIZE, "<I", 10**6), rf"target 0 at offset {TARGET0} claims 1000000"),
    (lambda d: patch(d, TARGET0_SIZE, "<I", 48), rf"element 1 at offset {ELEMENT0 + 48}: header runs"),
    (lambda d: patch(d, TARGET0_COUNT, "<I", 1), rf"target 0 at offset {TARGET0} gives size \d+, its 1"),
    (lambda d: patch(d, TARGET0_COUNT, "<I", 3), r"element 2 at offset \d+: header runs past"),
    (lambda d: patch(d, ELEMENT0 + 4, "<I", 4000), rf"element 0 at offset {ELEMENT0} claims 4000 bytes"),
    (lambda d: patch(d, ELEMENT0, "<I", 0xFFFFFFF0), rf"element 0 at offset {ELEMENT0} runs past"),
    (lambda d: reseal(d[:-16], bcd=0x0100), r"bcdDFU 0x0100; a DfuSe file needs 0x011a"),
    (lambda d: d[:-3], r"not b'UFD'"),
    (lambda d: d[:20], r"20 bytes is too short"),
    (lambda d: patch(reseal(d[:200]), 6, "<I", 200), r"target 0 at offset 11 is truncated"),
])
def test_damaged_structure_names_the_offset(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match=message):
        parse_dfuse(edit(sample_file()))


def test_every_truncation_is_a_format_error() -> None:
    data = sample_file()
    for cut in range(0, len(data), 7):
        with pytest.raises(FormatError):
            parse_dfuse(data[:cut])
        with pytest.raises(FormatError):
            parse_dfuse(reseal(data[: min(cut, len(data) - 17)]))


# --- building: impossible requests -----------------------------------------------------------------

@pytest.mark.parametrize(("built", "message"), [
    ([], "at least one target"),
    ([DfuseTarget(256, (DfuseElement(0, b"x"),))], "alternate setting 256"),
    ([DfuseTarget(0, ())], "no elements"),
    ([DfuseTarget(0, (DfuseElement(0x100, b"abcd"), DfuseElement(0x102, b"x")))], "overlap at 0x00000102"),
    ([DfuseTarget(0, (DfuseElement(0xFFFFFFFF, b"ab"),))], "32-bit address space"),
    ([DfuseTarget(0, (DfuseElement(0, b"x"),), "x" * 255)], "at most 254"),
    ([DfuseTarget(0, (DfuseElement(0, b"x"),), "Fläsh")], "not ASCII"),
    ([DfuseTarget(i % 256, (DfuseElement(0, b"x"),)) for i in range(256)], "at most 255 targets"),
])
def test_build_refuses(built: list[DfuseTarget], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_dfuse(built)


def test_elements_from_firmware_segments(sample) -> None:
    from mcuota.image.firmware import load_firmware

    fw = load_firmware(sample("dapboot-f103", "1.0.0", "hex"))
    elements = elements_from_segments((s.address, s.data) for s in fw.segments)
    assert elements == (DfuseElement(0x08002000, sample("dapboot-f103", "1.0.0", "bin").read_bytes()),)


# --- memory layout ---------------------------------------------------------------------------------

def test_f103_layout() -> None:
    layout = parse_memory_layout("@Internal Flash  /0x08000000/064*0002Kg")
    assert layout.name == "Internal Flash"
    assert len(layout.sectors) == 64
    assert (layout.start, layout.end) == (0x08000000, 0x08020000)
    assert all(s.size == 2048 and s.readable and s.erasable and s.writable for s in layout.sectors)


def test_f4_layout_with_mixed_sectors() -> None:
    layout = parse_memory_layout("@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg")
    sizes = [s.size // 1024 for s in layout.sectors]
    assert sizes == [16] * 4 + [64] + [128] * 7
    assert layout.end == 0x08100000
    assert layout.sector_at(0x08010000).size == 64 * 1024
    assert layout.sector_at(0x0800FFFF).address == 0x0800C000
    assert layout.sector_at(0x08100000) is None
    assert layout.sector_at(0x07FFFFFF) is None
    touched = layout.sectors_for(0x0800C000, 0x4001)
    assert [s.address for s in touched] == [0x0800C000, 0x08010000]
    assert layout.sectors_for(0x08000000, 0) == ()


def test_type_letters_and_units() -> None:
    layout = parse_memory_layout("@Option Bytes  /0x1FFFC000/01*016 e,01*2a,01*1Mb,01*4Bd,01*1Kf")
    flags = [(s.readable, s.erasable, s.writable) for s in layout.sectors]
    assert flags == [(True, False, True), (True, False, False), (False, True, False),
                     (False, False, True), (False, True, True)]
    assert [s.size for s in layout.sectors] == [16, 2, 1 << 20, 4, 1024]
    with pytest.raises(UsageError, match="not writable"):
        layout.sectors_for(0x1FFFC010, 1)
    with pytest.raises(UsageError, match="outside"):
        layout.sectors_for(0x1FFFB000, 1)


def test_several_regions() -> None:
    layout = parse_memory_layout("@Internal Flash /0x08000000/2*128Kg/0x08100000/2*128Kg")
    assert [hex(s.address) for s in layout.sectors] == [
        "0x8000000", "0x8020000", "0x8100000", "0x8120000"]
    with pytest.raises(UsageError, match="outside"):
        layout.sectors_for(0x08030000, 0x100000)


@pytest.mark.parametrize(("text", "message"), [
    ("Internal Flash/0x08000000/064*0002Kg", "does not start with '@'"),
    ("@Internal Flash/0x08000000", "is not '@name/address/sectors"),
    ("@Flash/0x08000000/2*128Kg/0x09000000", "is not '@name/address/sectors"),
    ("@Flash/0xZZ/064*0002Kg", "'0xZZ' is not a hex address"),
    ("@Flash/0x08000000/064x0002Kg", "sector group '064x0002Kg'"),
    ("@Flash/0x08000000/064*0002Kz", "sector group"),
    ("@Flash/0x08000000/0*2Kg", "empty sector group"),
    ("@Flash/0xFFFF0000/2*64Kg", "runs past 0xffffffff"),
    ("@Flash/0x08000000/2*128Kg/0x08010000/1*4Kg", "overlap at 0x08010000"),
    ("@Flash/0x00000000/99999*4Bg", "over 65536 sectors"),
])
def test_bad_layouts(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_memory_layout(text)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_files_fail_only_with_format_error(data: st.DataObject) -> None:
    """Bytes changed and resealed under a fresh CRC: a clean parse or a FormatError, nothing else."""
    body = bytearray(sample_file()[:-16])
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        parse_dfuse(reseal(bytes(body)))
