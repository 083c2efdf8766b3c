"""ST DfuSe files (UM0391) and the DfuSe memory-layout string.

A plain DFU file has no addresses: the device decides where the bytes go. ST's DfuSe bootloaders
instead take a "set address" command before each block, so their files carry addressed elements,
grouped by *target* (one per USB alternate setting: internal flash, option bytes, OTP…)::

    prefix   '<5sBIB'       b"DfuSe", version 1, DFUImageSize, bTargets
    target   '<6sBI255sII'  b"Target", bAlternateSetting, bTargetNamed, szTargetName, dwTargetSize,
                            dwNbElements — then the elements
    element  '<II'          dwElementAddress, dwElementSize — then the data
    suffix   DFU suffix with bcdDFU 0x011A (default VID:PID 0483:DF11)

DFUImageSize is read two ways in the field: UM0391 readers such as fwupd take it as the file length
*without* the suffix (and insist), while dfuse-pack writes the length *with* it. We write the former
and accept both. Every length is checked against the bytes actually present so that a damaged file
is a :class:`FormatError` naming the offset, never a short element flashed into a device.

The memory-layout string is the alternate setting's USB string descriptor, e.g.
``"@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"``: the USB DFU host reads it to know which
sectors to erase before writing and which addresses may be written at all.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from mcuota.errors import FormatError, UsageError
from mcuota.image.dfu import BCD_DFUSE, DfuSuffix, add_dfu_suffix, split_dfu_file
from mcuota.image.firmware import Segment

PREFIX_FORMAT = "<5sBIB"
PREFIX_LENGTH = struct.calcsize(PREFIX_FORMAT)  # 11
TARGET_FORMAT = "<6sBI255sII"
TARGET_LENGTH = struct.calcsize(TARGET_FORMAT)  # 274
ELEMENT_FORMAT = "<II"
ELEMENT_LENGTH = struct.calcsize(ELEMENT_FORMAT)  # 8
PREFIX_SIGNATURE = b"DfuSe"
TARGET_SIGNATURE = b"Target"
ST_VID = 0x0483
ST_DFU_PID = 0xDF11
MAX_NAME_LENGTH = 254  # the 255-byte field keeps a terminating NUL
_U32 = 1 << 32


DfuseElement = Segment
"""A DfuSe element is an addressed segment: bytes to write at one address (``.address``, ``.data``,
``.end``), the same value :mod:`mcuota.image.firmware` uses."""


@dataclass(frozen=True)
class DfuseTarget:
    """The elements for one alternate setting; ``name`` None means bTargetNamed is 0."""

    alternate: int
    elements: tuple[DfuseElement, ...]
    name: str | None = None


@dataclass(frozen=True)
class DfuseFile:
    """A parsed DfuSe file. ``image_size_with_suffix`` records which DFUImageSize reading it used."""

    targets: tuple[DfuseTarget, ...]
    suffix: DfuSuffix
    image_size_with_suffix: bool = False

    def target(self, alternate: int) -> DfuseTarget:
        """The target for an alternate setting (the host downloads one per alternate)."""
        for target in self.targets:
            if target.alternate == alternate:
                return target
        raise UsageError(f"the DfuSe file has no target for alternate setting {alternate}")


def build_dfuse(targets: Sequence[DfuseTarget], *, vid: int = ST_VID, pid: int = ST_DFU_PID,
                did: int = 0xFFFF) -> bytes:
    """A complete DfuSe file (prefix, targets, elements, suffix with bcdDFU 0x011A)."""
    if not targets:
        raise UsageError("a DfuSe file needs at least one target")
    if len(targets) > 255:
        raise UsageError(f"a DfuSe file holds at most 255 targets, not {len(targets)}")
    body = b"".join(_build_target(target) for target in targets)
    size = PREFIX_LENGTH + len(body)
    if size >= _U32:
        raise UsageError("DfuSe file over 4 GiB")
    image = struct.pack(PREFIX_FORMAT, PREFIX_SIGNATURE, 1, size, len(targets)) + body
    return add_dfu_suffix(image, vid=vid, pid=pid, did=did, bcd_dfu=BCD_DFUSE, allow_existing=True)


def _build_target(target: DfuseTarget) -> bytes:
    if not 0 <= target.alternate <= 255:
        raise UsageError(f"alternate setting {target.alternate} is not 0-255")
    if not target.elements:
        raise UsageError(f"target for alternate {target.alternate} has no elements")
    ordered = sorted(target.elements, key=lambda e: e.address)
    for before, after in pairwise(ordered):
        if after.address < before.end:
            raise UsageError(f"elements overlap at 0x{after.address:08x} (alternate {target.alternate})")
    parts = []
    for element in target.elements:
        if element.address < 0 or element.end > _U32:
            raise UsageError(f"element at 0x{element.address:x} ({len(element.data)} bytes) leaves the "
                             "32-bit address space")
        parts.append(struct.pack(ELEMENT_FORMAT, element.address, len(element.data)) + element.data)
    body = b"".join(parts)
    name = b""
    if target.name is not None:
        try:
            name = target.name.encode("ascii")
        except UnicodeEncodeError:
            raise UsageError(f"target name {target.name!r} is not ASCII") from None
        if len(name) > MAX_NAME_LENGTH or b"\0" in name:
            raise UsageError(f"target name must be at most {MAX_NAME_LENGTH} ASCII characters without NUL")
    head = struct.pack(TARGET_FORMAT, TARGET_SIGNATURE, target.alternate, int(target.name is not None),
                       name, len(body), len(target.elements))
    return head + body


def parse_dfuse(data: bytes, *, verify_crc: bool = True) -> DfuseFile:
    """Parse a DfuSe file, checking every signature, count and length against the bytes present."""
    if len(data) < PREFIX_LENGTH + 16:
        raise FormatError(f"{len(data)} bytes is too short for a DfuSe file (prefix and suffix need "
                          f"{PREFIX_LENGTH + 16})")
    if data[:5] != PREFIX_SIGNATURE:
        raise FormatError(f"not a DfuSe file: offset 0 holds {data[:5]!r}, not b'DfuSe'")
    payload, suffix = split_dfu_file(data, verify_crc=verify_crc)
    if suffix.bcd_dfu != BCD_DFUSE:
        raise FormatError(f"DFU suffix at offset {len(data) - 16} gives bcdDFU 0x{suffix.bcd_dfu:04x}; a "
                          "DfuSe file needs 0x011a")
    if len(payload) < PREFIX_LENGTH:
        raise FormatError(f"DfuSe prefix truncated: {len(payload)} bytes before the suffix")
    _, version, image_size, count = struct.unpack_from(PREFIX_FORMAT, payload)
    if version != 1:
        raise FormatError(f"DfuSe version {version} at offset 5 is not supported (only 1)")
    if image_size not in (len(payload), len(data)):
        raise FormatError(f"DfuSe prefix at offset 6 gives image size {image_size}, the file has "
                          f"{len(payload)} bytes before its suffix")
    offset = PREFIX_LENGTH
    targets = []
    for index in range(count):
        target, offset = _parse_target(payload, offset, index)
        targets.append(target)
    if offset != len(payload):
        raise FormatError(f"{len(payload) - offset} unexpected bytes at offset {offset} after "
                          f"{count} target(s)")
    return DfuseFile(tuple(targets), suffix, image_size == len(data) != len(payload))


def _parse_target(payload: bytes, offset: int, index: int) -> tuple[DfuseTarget, int]:
    if offset + TARGET_LENGTH > len(payload):
        raise FormatError(f"target {index} at offset {offset} is truncated: its prefix needs "
                          f"{TARGET_LENGTH} bytes, {len(payload) - offset} remain")
    signature, alternate, named, raw_name, size, n_elements = struct.unpack_from(
        TARGET_FORMAT, payload, offset)
    if signature != TARGET_SIGNATURE:
        raise FormatError(f"target {index} at offset {offset}: signature {signature!r} is not b'Target'")
    start = offset + TARGET_LENGTH
    end = start + size
    if end > len(payload):
        raise FormatError(f"target {index} at offset {offset} claims {size} bytes, only "
                          f"{len(payload) - start} remain before the suffix")
    elements = []
    pos = start
    for number in range(n_elements):
        if pos + ELEMENT_LENGTH > end:
            raise FormatError(f"target {index} element {number} at offset {pos}: header runs past the "
                              f"target's end (offset {end})")
        address, length = struct.unpack_from(ELEMENT_FORMAT, payload, pos)
        data_start = pos + ELEMENT_LENGTH
        if data_start + length > end:
            raise FormatError(f"target {index} element {number} at offset {pos} claims {length} bytes, "
                              f"only {end - data_start} remain in the target")
        if address + length > _U32:
            raise FormatError(f"target {index} element {number} at offset {pos} runs past 0xffffffff")
        elements.append(DfuseElement(address, payload[data_start : data_start + length]))
        pos = data_start + length
    if pos != end:
        raise FormatError(f"target {index} at offset {offset} gives size {size}, its {n_elements} "
                          f"element(s) take {pos - start}")
    name = raw_name.split(b"\0", 1)[0].decode("latin-1") if named else None
    return DfuseTarget(alternate, tuple(elements), name), end


def looks_like_dfuse(data: bytes) -> bool:
    """True for a DfuSe container (prefix signature and bcdDFU 0x011A), which a host must unpack
    rather than send as is; the CRC and lengths are checked later by :func:`parse_dfuse`."""
    return (data[:5] == PREFIX_SIGNATURE and len(data) >= PREFIX_LENGTH + 16
            and data[-8:-5] == b"UFD" and data[-10:-8] == BCD_DFUSE.to_bytes(2, "little"))


def elements_from_segments(segments: Iterable[tuple[int, bytes]]) -> tuple[DfuseElement, ...]:
    """Elements from (address, data) pairs, e.g. a :class:`~mcuota.image.firmware.Firmware`'s segments."""
    return tuple(DfuseElement(address, bytes(data)) for address, data in segments)


# --- memory layout ---------------------------------------------------------------------------------

READABLE, ERASABLE, WRITABLE = 1, 2, 4


@dataclass(frozen=True)
class DfuseSector:
    """One erasable unit of a DfuSe memory, with what the bootloader allows on it."""

    address: int
    size: int
    flags: int  # READABLE | ERASABLE | WRITABLE, from the type letter a..g

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def readable(self) -> bool:
        return bool(self.flags & READABLE)

    @property
    def erasable(self) -> bool:
        return bool(self.flags & ERASABLE)

    @property
    def writable(self) -> bool:
        return bool(self.flags & WRITABLE)


@dataclass(frozen=True)
class DfuseMemoryLayout:
    """A memory named by an alternate setting, as sectors sorted by address."""

    name: str
    sectors: tuple[DfuseSector, ...]

    @property
    def start(self) -> int:
        return self.sectors[0].address

    @property
    def end(self) -> int:
        return self.sectors[-1].end

    @cached_property
    def _starts(self) -> list[int]:
        return [sector.address for sector in self.sectors]

    def sector_at(self, address: int) -> DfuseSector | None:
        """The sector holding ``address``, or None if the memory does not cover it."""
        index = bisect_right(self._starts, address) - 1
        if index >= 0 and address < self.sectors[index].end:
            return self.sectors[index]
        return None

    def sectors_for(self, address: int, length: int) -> tuple[DfuseSector, ...]:
        """The sectors a write of ``length`` bytes at ``address`` touches (what to erase first).

        UsageError if part of the range is outside the memory or not writable: the host must refuse
        before erasing anything.
        """
        if length <= 0:
            return ()
        touched = []
        pos, end = address, address + length
        while pos < end:
            sector = self.sector_at(pos)
            if sector is None:
                raise UsageError(f"address 0x{pos:08x} is outside {self.name!r}")
            if not sector.writable:
                raise UsageError(f"sector 0x{sector.address:08x} of {self.name!r} is not writable")
            touched.append(sector)
            pos = sector.end
        return tuple(touched)


_LAYOUT_GROUP = re.compile(r"\s*(\d+)\s*\*\s*(\d+)\s*([BKM ]?)([a-g])\s*")
_UNITS = {"": 1, " ": 1, "B": 1, "K": 1024, "M": 1024 * 1024}
#: The string comes from a USB device: a hostile or broken one must not make us build 4 G objects.
MAX_LAYOUT_SECTORS = 1 << 16


def parse_memory_layout(text: str) -> DfuseMemoryLayout:
    """Parse ``@Name/0xADDR/NN*SSSu t[,NN*SSSu t…][/0xADDR/…]`` into sectors.

    Counts and sizes are decimal even with leading zeros ("064" is 64); the unit is B, K, M or a space
    (bytes); the type letter's low bits say readable (a), erasable (b), writable (d), so g is all three.
    """
    if not text.startswith("@"):
        raise FormatError(f"memory layout {text!r} does not start with '@'")
    parts = text[1:].split("/")
    if len(parts) < 3 or len(parts) % 2 == 0:
        raise FormatError(f"memory layout {text!r} is not '@name/address/sectors[/address/sectors…]'")
    name = parts[0].strip()
    sectors: list[DfuseSector] = []
    for address_text, groups in zip(parts[1::2], parts[2::2], strict=True):
        try:
            address = int(address_text.strip(), 16)
        except ValueError:
            raise FormatError(f"memory layout {text!r}: {address_text!r} is not a hex address") from None
        for group in groups.split(","):
            match = _LAYOUT_GROUP.fullmatch(group)
            if match is None:
                raise FormatError(f"memory layout {text!r}: sector group {group!r} is not "
                                  "NN*SIZE<unit><type>")
            count, size = int(match[1], 10), int(match[2], 10) * _UNITS[match[3]]
            if count == 0 or size == 0:
                raise FormatError(f"memory layout {text!r}: empty sector group {group!r}")
            if address + count * size > _U32:
                raise FormatError(f"memory layout {text!r}: group {group!r} runs past 0xffffffff")
            if len(sectors) + count > MAX_LAYOUT_SECTORS:
                raise FormatError(f"memory layout {text!r} lists over {MAX_LAYOUT_SECTORS} sectors")
            flags = (ord(match[4]) - ord("a") + 1) & 7
            sectors.extend(DfuseSector(address + i * size, size, flags) for i in range(count))
            address += count * size
    sectors.sort(key=lambda s: s.address)
    for before, after in pairwise(sectors):
        if after.address < before.end:
            raise FormatError(f"memory layout {text!r}: sectors overlap at 0x{after.address:08x}")
    return DfuseMemoryLayout(name, tuple(sectors))
