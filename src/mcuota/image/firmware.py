"""Firmware as addressed bytes, whatever file it came in: raw .bin, Intel HEX, Motorola SREC or ELF.

Everything downstream (signing, the seed formats, flashing) wants one contiguous payload and the
address it runs from; this module is the single place that turns a build output into that.
Intel HEX and SREC go through bincopy, ELF through pyelftools (its PT_LOAD segments at their load
addresses, which is what ``objcopy -O binary`` produces); gaps are filled with the erased value.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcuota.errors import FormatError, UsageError

InputKind = Literal["bin", "hex", "srec", "elf"]
OutputKind = Literal["bin", "hex", "srec"]

_SUFFIX_KINDS: dict[str, InputKind] = {
    ".bin": "bin", ".img": "bin", ".hex": "hex", ".ihex": "hex", ".ihx": "hex",
    ".srec": "srec", ".s19": "srec", ".s28": "srec", ".s37": "srec", ".mot": "srec",
    ".elf": "elf", ".axf": "elf", ".out": "elf",
}


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


@dataclass(frozen=True)
class Firmware:
    """Addressed firmware: one or more non-overlapping segments, sorted by address."""

    segments: tuple[Segment, ...]
    entry: int | None = None
    source_kind: InputKind = "bin"
    erased: int = field(default=0xFF)

    @property
    def start(self) -> int:
        return self.segments[0].address if self.segments else 0

    @property
    def end(self) -> int:
        return self.segments[-1].end if self.segments else 0

    def contiguous(self, fill: int | None = None) -> bytes:
        """The bytes from :attr:`start` to :attr:`end`, gaps filled with the erased value."""
        value = self.erased if fill is None else fill
        out = bytearray([value]) * (self.end - self.start)
        for seg in self.segments:
            out[seg.address - self.start : seg.end - self.start] = seg.data
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> Firmware:
        return cls(segments=(Segment(address, bytes(data)),) if data else (), source_kind="bin")


def detect_kind(data: bytes, name: str | None = None) -> InputKind:
    """Guess the container from content first (ELF magic, record syntax), then from the file suffix."""
    if data[:4] == b"\x7fELF":
        return "elf"
    head = data[:64].lstrip()
    if head[:1] == b":" and _is_text(data):
        return "hex"
    if head[:1] == b"S" and head[1:2].isdigit() and _is_text(data):
        return "srec"
    if name is not None:
        kind = _SUFFIX_KINDS.get(Path(name).suffix.lower())
        if kind in ("hex", "srec", "elf"):
            raise FormatError(f"{name} has a .{kind} name but its content is not {kind}")
    return "bin"


def _is_text(data: bytes) -> bool:
    try:
        data[:4096].decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


def parse_firmware(data: bytes, *, kind: InputKind | None = None, load_address: int | None = None,
                   name: str | None = None) -> Firmware:
    """Parse firmware bytes; a raw binary needs ``load_address`` (0 if not given)."""
    kind = kind or detect_kind(data, name)
    label = name or "input"
    if not data:
        raise FormatError(f"{label} is empty")
    if kind == "bin":
        return Firmware.from_bytes(data, load_address or 0)
    if kind == "elf":
        firmware = _parse_elf(data, label)
    else:
        firmware = _parse_records(data, kind, label)
    if load_address is not None and firmware.segments and load_address != firmware.start:
        delta = load_address - firmware.start
        firmware = Firmware(
            tuple(Segment(s.address + delta, s.data) for s in firmware.segments),
            None if firmware.entry is None else firmware.entry + delta,
            firmware.source_kind,
        )
    return firmware


def load_firmware(path: str | Path, *, load_address: int | None = None) -> Firmware:
    """Thin file wrapper over :func:`parse_firmware`."""
    from mcuota.fsutil import read_input

    return parse_firmware(read_input(path, "firmware"), load_address=load_address, name=str(path))


def _parse_records(data: bytes, kind: InputKind, label: str) -> Firmware:
    import bincopy

    binfile = bincopy.BinFile()
    text = data.decode("ascii", errors="replace")
    try:
        if kind == "hex":
            binfile.add_ihex(text)
        else:
            binfile.add_srec(text)
    except bincopy.AddDataError as exc:
        raise FormatError(f"{label}: overlapping records ({exc})") from None
    except bincopy.Error as exc:
        raise FormatError(f"{label}: not valid {'Intel HEX' if kind == 'hex' else 'SREC'}: {exc}") from None
    segments = tuple(Segment(seg.minimum_address, bytes(seg.data)) for seg in binfile.segments)
    if not segments:
        raise FormatError(f"{label} contains no data records")
    return Firmware(segments, binfile.execution_start_address, kind)


def _parse_elf(data: bytes, label: str) -> Firmware:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]]
        pieces: list[Segment] = []
        # Sections, not whole segments: a segment's file image may start with the ELF headers.
        for sec in elf.iter_sections():
            if sec["sh_type"] == "SHT_NOBITS" or not sec["sh_flags"] & 0x2 or sec["sh_size"] == 0:
                continue
            for seg in loads:
                if seg["p_offset"] <= sec["sh_offset"] < seg["p_offset"] + seg["p_filesz"]:
                    lma = seg["p_paddr"] + sec["sh_offset"] - seg["p_offset"]
                    pieces.append(Segment(lma, sec.data()))
                    break
        entry = int(elf.header["e_entry"])
    except (ELFError, ValueError, KeyError) as exc:
        raise FormatError(f"{label}: not a valid ELF file: {exc}") from None
    if not pieces:
        raise FormatError(f"{label}: ELF file has no loadable segments")
    return Firmware(_merge(pieces, label), entry, "elf")


def _merge(pieces: list[Segment], label: str) -> tuple[Segment, ...]:
    pieces.sort(key=lambda s: s.address)
    merged: list[Segment] = []
    for seg in pieces:
        if merged and seg.address < merged[-1].end:
            raise FormatError(f"{label}: segments overlap at 0x{seg.address:08x}")
        if merged and seg.address == merged[-1].end:
            merged[-1] = Segment(merged[-1].address, merged[-1].data + seg.data)
        else:
            merged.append(seg)
    return tuple(merged)


def render_firmware(firmware: Firmware, kind: OutputKind, *, fill: int | None = None) -> bytes:
    """Write firmware as a raw binary (gaps filled) or as Intel HEX / SREC records."""
    if kind == "bin":
        return firmware.contiguous(fill)
    import bincopy

    binfile = bincopy.BinFile()
    for seg in firmware.segments:
        binfile.add_binary(seg.data, address=seg.address)
    if firmware.entry is not None:
        binfile.execution_start_address = firmware.entry
    if kind == "hex":
        return str(binfile.as_ihex()).encode()
    if kind == "srec":
        return str(binfile.as_srec()).encode()
    raise UsageError(f"unknown output format {kind!r}")


def output_kind_for(path: str | Path) -> OutputKind:
    """Pick the output container from a file name, refusing names that say nothing."""
    kind = _SUFFIX_KINDS.get(Path(path).suffix.lower())
    if kind is None or kind == "elf":
        raise UsageError(f"cannot tell the output format from {path}: use .bin, .hex or .srec")
    return kind
