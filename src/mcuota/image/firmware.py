"""Firmware as addressed bytes, whatever file it came in: raw .bin, Intel HEX, Motorola SREC or ELF.

Everything downstream (signing, the seed formats, DFU files, flashing) wants one contiguous payload
and the address it runs from; this module is the single place that turns a build output into that,
and back into records for the tools that want text.

The HEX and SREC readers are strict on purpose: an OTA pipeline must never flash half a file, so a
record with a bad checksum or length, data after the end-of-file record, a missing end (HEX: the EOF
record; SREC: a count or termination record), or two records writing the same address is a
:class:`FormatError` that names the line and the address. ELF goes through pyelftools: each
allocated section at its load address (LMA), which is what ``objcopy -O binary`` produces. Gaps are
filled with the erased value.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile

from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.fsutil import read_input

InputKind = Literal["bin", "hex", "srec", "elf"]
OutputKind = Literal["bin", "hex", "srec"]

_SUFFIX_KINDS: dict[str, InputKind] = {
    ".bin": "bin", ".img": "bin", ".hex": "hex", ".ihex": "hex", ".ihx": "hex",
    ".srec": "srec", ".s19": "srec", ".s28": "srec", ".s37": "srec", ".mot": "srec",
    ".elf": "elf", ".axf": "elf", ".out": "elf",
}

#: A raw binary spanning more than this is almost always two regions far apart (flash and RAM, or
#: an option-byte block); filling the gap would write hundreds of megabytes of 0xFF.
MAX_BINARY_SPAN = 256 * 1024 * 1024

ADDRESS_LIMIT = 1 << 32  # HEX, SREC, DfuSe and Cortex-M addresses are 32-bit
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]*")


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


@dataclass(frozen=True)
class Firmware:
    """Addressed firmware: one or more non-overlapping segments, sorted by address.

    Build one with :meth:`from_segments` when the pieces come from elsewhere: it sorts, merges
    adjacent pieces and refuses overlaps, so that two equal images always compare equal.
    """

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

    @property
    def data_size(self) -> int:
        """Bytes actually present (gaps not counted)."""
        return sum(len(seg.data) for seg in self.segments)

    def contiguous(self, fill: int | None = None) -> bytes:
        """The bytes from :attr:`start` to :attr:`end`, gaps filled with the erased value."""
        value = self.erased if fill is None else fill
        if not 0 <= value <= 0xFF:
            raise UsageError(f"fill value {value:#x} is not a byte (0x00-0xff)")
        span = self.end - self.start
        if span > MAX_BINARY_SPAN:
            raise CapacityError(
                f"firmware spans 0x{self.start:08x}-0x{self.end:08x} ({span} bytes): too large for one "
                "binary; select a range (crop) or write HEX/SREC, which keep the gap")
        out = bytearray([value]) * span
        for seg in self.segments:
            out[seg.address - self.start : seg.end - self.start] = seg.data
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, address: int = 0) -> Firmware:
        return cls(segments=(Segment(address, bytes(data)),) if data else (), source_kind="bin")

    @classmethod
    def from_segments(cls, pieces: Iterable[Segment], *, entry: int | None = None,
                      source_kind: InputKind = "bin", label: str = "firmware") -> Firmware:
        """Normalise pieces in any order into a Firmware; overlapping pieces are a FormatError."""
        return cls(_merge(list(pieces), label), entry, source_kind)

    def crop(self, start: int | None = None, end: int | None = None) -> Firmware:
        """Only the bytes in ``[start, end)``: e.g. drop an option-byte block before making a .bin."""
        lo = min(self.start, end if end is not None else self.start) if start is None else start
        hi = max(self.end, lo) if end is None else end
        if hi < lo:
            raise UsageError(f"empty address range 0x{lo:08x}-0x{hi:08x}")
        kept = []
        for seg in self.segments:
            a, b = max(seg.address, lo), min(seg.end, hi)
            if a < b:
                kept.append(Segment(a, seg.data[a - seg.address : b - seg.address]))
        return Firmware(tuple(kept), self.entry, self.source_kind, self.erased)

    def relocate(self, address: int) -> Firmware:
        """The same bytes moved so that :attr:`start` is ``address`` (entry moves along)."""
        delta = address - self.start
        if delta == 0 or not self.segments:
            return self
        if address < 0 or self.end + delta > ADDRESS_LIMIT:
            raise UsageError(f"cannot move firmware to 0x{address:x}: it would leave the 32-bit space")
        return Firmware(tuple(Segment(s.address + delta, s.data) for s in self.segments),
                        None if self.entry is None else self.entry + delta, self.source_kind, self.erased)


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
    """Parse firmware bytes; a raw binary needs ``load_address`` (0 if not given).

    For HEX/SREC/ELF a ``load_address`` moves the whole image so that it starts there.
    """
    label = name or "input"
    if not data:
        raise FormatError(f"{label} is empty")
    kind = kind or detect_kind(data, name)
    if kind == "bin":
        return Firmware.from_bytes(data, load_address or 0)
    firmware = _parse_elf(data, label) if kind == "elf" else _parse_records(data, kind, label)
    return firmware if load_address is None else firmware.relocate(load_address)


def load_firmware(path: str | Path, *, load_address: int | None = None) -> Firmware:
    """Thin file wrapper over :func:`parse_firmware`."""
    return parse_firmware(read_input(path, "firmware"), load_address=load_address, name=str(path))


# --- Intel HEX and Motorola SREC -------------------------------------------------------------------

@dataclass(frozen=True)
class _Piece:
    address: int
    data: bytes
    line: int


def _parse_records(data: bytes, kind: InputKind, label: str) -> Firmware:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{label}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
                          f"{'Intel HEX' if kind == 'hex' else 'SREC'} text") from None
    pieces, entry = _read_ihex(text, label) if kind == "hex" else _read_srec(text, label)
    if not pieces:
        raise FormatError(f"{label} contains no data records")
    return Firmware(_merge_pieces(pieces, label), entry, kind)


def _record_bytes(body: str, where: str) -> bytes:
    if len(body) % 2 or not _HEX_DIGITS.fullmatch(body):
        raise FormatError(f"{where}: not an even number of hex digits (truncated or garbage record)")
    return bytes.fromhex(body)


def _read_ihex(text: str, label: str) -> tuple[list[_Piece], int | None]:
    pieces: list[_Piece] = []
    base = 0
    entry: int | None = None
    ended = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{label}: line {lineno}"
        if ended:
            raise FormatError(f"{where}: record after the end-of-file record")
        if line[0] != ":":
            raise FormatError(f"{where}: not an Intel HEX record (does not start with ':')")
        record = _record_bytes(line[1:], where)
        if len(record) < 5:
            raise FormatError(f"{where}: record too short ({len(record)} bytes)")
        count = record[0]
        if len(record) != count + 5:
            raise FormatError(f"{where}: record holds {len(record) - 5} data bytes but its count says "
                              f"{count} (truncated?)")
        if sum(record) & 0xFF:
            expected = -sum(record[:-1]) & 0xFF
            raise FormatError(f"{where}: checksum 0x{record[-1]:02X} should be 0x{expected:02X}")
        offset = int.from_bytes(record[1:3], "big")
        rtype, payload = record[3], record[4:-1]
        if rtype == 0x00:
            if base + offset + count > ADDRESS_LIMIT:
                raise FormatError(f"{where}: data runs past the 32-bit address space")
            pieces.append(_Piece(base + offset, payload, lineno))
        elif rtype == 0x01:
            ended = True
        elif rtype in (0x02, 0x04):
            if count != 2:
                raise FormatError(f"{where}: extended address record with {count} bytes (needs 2)")
            base = int.from_bytes(payload, "big") << (4 if rtype == 0x02 else 16)
        elif rtype in (0x03, 0x05):
            if count != 4:
                raise FormatError(f"{where}: start address record with {count} bytes (needs 4)")
            value = int.from_bytes(payload, "big")
            entry = value if rtype == 0x05 else ((value >> 16) << 4) + (value & 0xFFFF)
        else:
            raise FormatError(f"{where}: unknown record type 0x{rtype:02X}")
    if not ended:
        raise FormatError(f"{label}: no end-of-file record (:00000001FF): the file looks truncated")
    return pieces, entry


_SREC_ADDRESS_BYTES = {"0": 2, "1": 2, "2": 3, "3": 4, "5": 2, "6": 3, "7": 4, "8": 3, "9": 2}


def _read_srec(text: str, label: str) -> tuple[list[_Piece], int | None]:
    pieces: list[_Piece] = []
    entry: int | None = None
    ended = counted = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{label}: line {lineno}"
        if ended:
            raise FormatError(f"{where}: record after the termination record")
        if len(line) < 2 or line[0] != "S":
            raise FormatError(f"{where}: not an SREC record (does not start with 'S<digit>')")
        rtype = line[1]
        if rtype not in _SREC_ADDRESS_BYTES:
            raise FormatError(f"{where}: unknown record type S{rtype}")
        record = _record_bytes(line[2:], where)
        alen = _SREC_ADDRESS_BYTES[rtype]
        if len(record) < alen + 2:
            raise FormatError(f"{where}: record too short ({len(record)} bytes)")
        if record[0] != len(record) - 1:
            raise FormatError(f"{where}: record holds {len(record) - 1} bytes but its count says "
                              f"{record[0]} (truncated?)")
        expected = 0xFF - (sum(record[:-1]) & 0xFF)
        if record[-1] != expected:
            raise FormatError(f"{where}: checksum 0x{record[-1]:02X} should be 0x{expected:02X}")
        address = int.from_bytes(record[1 : 1 + alen], "big")
        payload = record[1 + alen : -1]
        if rtype in "123":
            pieces.append(_Piece(address, payload, lineno))
        elif rtype in "56":
            if payload:
                raise FormatError(f"{where}: record-count record carries data")
            if address != len(pieces):
                raise FormatError(f"{where}: record count says {address} data records, the file has "
                                  f"{len(pieces)} before it")
            counted = True
        elif rtype in "789":
            entry = address
            ended = True
    # srec_cat ends with a count record and no termination when there is no entry point; objcopy
    # ends with S7/S8/S9. A file with neither cannot be told from one cut at a line boundary.
    if not ended and not counted:
        raise FormatError(f"{label}: no count (S5/S6) or termination (S7/S8/S9) record: the file looks "
                          "truncated")
    return pieces, entry


def _merge_pieces(pieces: list[_Piece], label: str) -> tuple[Segment, ...]:
    """Sort records and join the adjacent ones; two records for one address are a FormatError."""
    pieces.sort(key=lambda p: (p.address, p.line))
    merged: list[tuple[int, bytearray, _Piece]] = []  # start, data, last piece (for messages)
    for piece in pieces:
        if not piece.data:
            continue
        if merged:
            start, data, last = merged[-1]
            end = start + len(data)
            if piece.address < end:
                first, second = sorted((last, piece), key=lambda p: p.line)
                raise FormatError(f"{label}: line {second.line} writes address 0x{piece.address:08X}, "
                                  f"already written by line {first.line} (overlapping records)")
            if piece.address == end:
                data += piece.data
                merged[-1] = (start, data, piece)
                continue
        merged.append((piece.address, bytearray(piece.data), piece))
    return tuple(Segment(start, bytes(data)) for start, data, _ in merged)


def _merge(pieces: list[Segment], label: str) -> tuple[Segment, ...]:
    pieces.sort(key=lambda s: s.address)
    merged: list[tuple[int, bytearray]] = []
    for seg in pieces:
        if not seg.data:
            continue
        if merged and seg.address < merged[-1][0] + len(merged[-1][1]):
            raise FormatError(f"{label}: segments overlap at 0x{seg.address:08x}")
        if merged and seg.address == merged[-1][0] + len(merged[-1][1]):
            merged[-1][1].extend(seg.data)
        else:
            merged.append((seg.address, bytearray(seg.data)))
    return tuple(Segment(address, bytes(data)) for address, data in merged)


# --- ELF -------------------------------------------------------------------------------------------

def _parse_elf(data: bytes, label: str) -> Firmware:
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
                    body = sec.data()
                    if len(body) != sec["sh_size"]:
                        raise FormatError(f"{label}: section {sec.name} is truncated")
                    pieces.append(Segment(lma, body))
                    break
        entry = int(elf.header["e_entry"])
    except (ELFError, ConstructError, ValueError, KeyError, IndexError, struct.error) as exc:
        raise FormatError(f"{label}: not a valid ELF file: {exc}") from None
    if not pieces:
        raise FormatError(f"{label}: ELF file has no loadable segments")
    return Firmware(_merge(pieces, label), entry, "elf")


# --- writing ---------------------------------------------------------------------------------------

def render_firmware(firmware: Firmware, kind: OutputKind, *, fill: int | None = None,
                    record_size: int = 32, srec_address_bits: int | None = None) -> bytes:
    """Write firmware as a raw binary (gaps filled) or as Intel HEX / SREC records.

    ``record_size`` is the data bytes per record (some bootloaders' parsers cap it at 16);
    ``srec_address_bits`` forces S1/S2/S3 records (16/24/32), otherwise the narrowest that fits.
    """
    if kind == "bin":
        return firmware.contiguous(fill)
    if not firmware.segments:
        raise UsageError("nothing to write: the firmware has no data")
    if firmware.end > ADDRESS_LIMIT or (firmware.entry or 0) >= ADDRESS_LIMIT:
        raise UsageError(f"firmware ends at 0x{firmware.end:x}, past the 32-bit address space")
    if kind == "hex":
        return _render_ihex(firmware, record_size).encode()
    if kind == "srec":
        return _render_srec(firmware, record_size, srec_address_bits).encode()
    raise UsageError(f"unknown output format {kind!r}")


def _ihex_record(rtype: int, offset: int, payload: bytes) -> str:
    body = bytes([len(payload), offset >> 8, offset & 0xFF, rtype]) + payload
    return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()


def _render_ihex(firmware: Firmware, record_size: int) -> str:
    if not 1 <= record_size <= 255:
        raise UsageError(f"Intel HEX records hold 1-255 data bytes, not {record_size}")
    lines: list[str] = []
    upper = 0
    for seg in firmware.segments:
        pos = 0
        while pos < len(seg.data):
            address = seg.address + pos
            if address >> 16 != upper:
                upper = address >> 16
                lines.append(_ihex_record(0x04, 0, upper.to_bytes(2, "big")))
            # A record never crosses a 64 KiB boundary: its offset field would wrap.
            n = min(record_size, len(seg.data) - pos, 0x10000 - (address & 0xFFFF))
            lines.append(_ihex_record(0x00, address & 0xFFFF, seg.data[pos : pos + n]))
            pos += n
    if firmware.entry is not None:
        lines.append(_ihex_record(0x05, 0, firmware.entry.to_bytes(4, "big")))
    lines.append(_ihex_record(0x01, 0, b""))
    return "\n".join(lines) + "\n"


def _srec_record(rtype: int, address: int, alen: int, payload: bytes) -> str:
    body = bytes([alen + len(payload) + 1]) + address.to_bytes(alen, "big") + payload
    return f"S{rtype}" + (body + bytes([0xFF - (sum(body) & 0xFF)])).hex().upper()


def _render_srec(firmware: Firmware, record_size: int, address_bits: int | None) -> str:
    highest = max(firmware.end - 1, firmware.entry or 0)
    needed = 16 if highest < 1 << 16 else 24 if highest < 1 << 24 else 32
    bits = address_bits or needed
    if bits not in (16, 24, 32):
        raise UsageError(f"SREC addresses are 16, 24 or 32 bits, not {bits}")
    if bits < needed:
        raise UsageError(f"address 0x{highest:x} does not fit {bits}-bit SREC records")
    alen = bits // 8
    if not 1 <= record_size <= 254 - alen:
        raise UsageError(f"{bits}-bit SREC records hold 1-{254 - alen} data bytes, not {record_size}")
    data_type = {16: 1, 24: 2, 32: 3}[bits]
    lines = [_srec_record(0, 0, 2, b"")]
    count = 0
    for seg in firmware.segments:
        for pos in range(0, len(seg.data), record_size):
            lines.append(_srec_record(data_type, seg.address + pos, alen, seg.data[pos : pos + record_size]))
            count += 1
    if count <= 0xFFFF:
        lines.append(_srec_record(5, count, 2, b""))
    elif count <= 0xFFFFFF:
        lines.append(_srec_record(6, count, 3, b""))
    lines.append(_srec_record({16: 9, 24: 8, 32: 7}[bits], firmware.entry or 0, alen, b""))
    return "\n".join(lines) + "\n"


def output_kind_for(path: str | Path) -> OutputKind:
    """Pick the output container from a file name, refusing names that say nothing."""
    kind = _SUFFIX_KINDS.get(Path(path).suffix.lower())
    if kind is None or kind == "elf":
        raise UsageError(f"cannot tell the output format from {path}: use .bin, .hex or .srec")
    return kind
