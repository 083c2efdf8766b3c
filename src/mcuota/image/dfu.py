"""The USB DFU 1.1 file suffix: the 16 bytes that tell a DFU host which device a file is for.

A ``.dfu`` file is the raw payload followed by ``<HHHH3sBI``: bcdDevice, idProduct, idVendor, bcdDFU,
``b"UFD"`` (the reversed signature), bLength (16) and dwCRC. The CRC is the plain CRC-32 of every byte
before it *without* the final inversion, i.e. ``zlib.crc32(file[:-4]) ^ 0xFFFFFFFF``; 0xFFFF in any ID
field means "any". The suffix is never sent to the device: the host checks it, strips it and refuses
a file whose IDs name another device (:func:`ensure_for_device`). ST's DfuSe files carry the same
suffix with bcdDFU 0x011A (see :mod:`mcuota.image.dfuse`).

Which failure is which: a file without a suffix, with a mangled one, or whose CRC does not match is
not a usable DFU file (:class:`FormatError`, like a HEX record checksum); :func:`verify_dfu_suffix`
instead *reports* the CRC in a typed result, for ``dfu check`` and for hosts that want to say more.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from mcuota.errors import FormatError, UsageError

SUFFIX_FORMAT = "<HHHH3sBI"
SUFFIX_LENGTH = struct.calcsize(SUFFIX_FORMAT)  # 16
SIGNATURE = b"UFD"
BCD_DFU_1_0 = 0x0100  # what dfu-util and most tools write for plain DFU 1.0/1.1 files
BCD_DFU_1_1 = 0x0110
BCD_DFUSE = 0x011A  # ST's DfuSe extension: the payload is a DfuSe container
WILDCARD = 0xFFFF


def dfu_crc(data: bytes) -> int:
    """The suffix CRC: CRC-32 (IEEE) of ``data`` with no final XOR, as DFU 1.1 appendix B defines."""
    return zlib.crc32(data) ^ 0xFFFFFFFF


@dataclass(frozen=True)
class DfuSuffix:
    """The suffix fields; IDs of 0xFFFF are wildcards."""

    vid: int = WILDCARD
    pid: int = WILDCARD
    did: int = WILDCARD  # bcdDevice: the firmware release the file is for
    bcd_dfu: int = BCD_DFU_1_0
    length: int = SUFFIX_LENGTH
    crc: int = 0

    @property
    def is_dfuse(self) -> bool:
        return self.bcd_dfu == BCD_DFUSE

    def matches(self, vid: int, pid: int, did: int | None = None) -> bool:
        """True if a device with these IDs may take the file (0xFFFF in the file matches anything)."""
        return (_id_matches(self.vid, vid) and _id_matches(self.pid, pid)
                and (did is None or _id_matches(self.did, did)))


def _id_matches(in_file: int, device: int) -> bool:
    return in_file in (WILDCARD, device)


@dataclass(frozen=True)
class SuffixCheck:
    """What :func:`verify_dfu_suffix` found: the fields, both CRCs and where the payload ends."""

    suffix: DfuSuffix
    computed_crc: int
    payload_length: int

    @property
    def crc_ok(self) -> bool:
        return self.suffix.crc == self.computed_crc

    @property
    def valid(self) -> bool:
        return self.crc_ok


def _check_id(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"{name} 0x{value:x} does not fit 16 bits")


def build_dfu_suffix(payload: bytes, *, vid: int = WILDCARD, pid: int = WILDCARD, did: int = WILDCARD,
                     bcd_dfu: int = BCD_DFU_1_0) -> bytes:
    """The 16 suffix bytes for ``payload`` (its CRC covers the payload and the first 12 suffix bytes)."""
    for name, value in (("vendor ID", vid), ("product ID", pid), ("device ID", did), ("bcdDFU", bcd_dfu)):
        _check_id(name, value)
    head = struct.pack("<HHHH3sB", did, pid, vid, bcd_dfu, SIGNATURE, SUFFIX_LENGTH)
    crc = zlib.crc32(head, zlib.crc32(payload)) ^ 0xFFFFFFFF
    return head + struct.pack("<I", crc)


def add_dfu_suffix(payload: bytes, *, vid: int = WILDCARD, pid: int = WILDCARD, did: int = WILDCARD,
                   bcd_dfu: int = BCD_DFU_1_0, allow_existing: bool = False) -> bytes:
    """``payload`` plus its suffix; refuses a payload that already ends in a valid suffix.

    Two suffixes would make the host strip one and flash the other into the device, as dfu-suffix
    also refuses; ``allow_existing`` is for the rare raw binary that happens to end like one.
    """
    if not allow_existing and has_dfu_suffix(payload):
        raise UsageError("the input already has a DFU suffix: strip it first")
    return payload + build_dfu_suffix(payload, vid=vid, pid=pid, did=did, bcd_dfu=bcd_dfu)


def parse_dfu_suffix(data: bytes) -> DfuSuffix:
    """Read the suffix fields (CRC not checked); FormatError naming the offset if there is none."""
    if len(data) < SUFFIX_LENGTH:
        raise FormatError(f"{len(data)} bytes is too short for a DFU suffix ({SUFFIX_LENGTH} bytes)")
    base = len(data) - SUFFIX_LENGTH
    did, pid, vid, bcd_dfu, signature, length, crc = struct.unpack(SUFFIX_FORMAT, data[base:])
    if signature != SIGNATURE:
        raise FormatError(f"no DFU suffix: bytes at offset {base + 8} are {signature!r}, not b'UFD'")
    if length < SUFFIX_LENGTH or length > len(data):
        raise FormatError(f"DFU suffix at offset {base} gives bLength {length}: must be "
                          f"{SUFFIX_LENGTH}..{len(data)}")
    return DfuSuffix(vid, pid, did, bcd_dfu, length, crc)


def verify_dfu_suffix(data: bytes) -> SuffixCheck:
    """Check a DFU file's suffix: fields and whether the CRC matches (never raises for a bad CRC)."""
    suffix = parse_dfu_suffix(data)
    return SuffixCheck(suffix, dfu_crc(data[:-4]), len(data) - suffix.length)


def has_dfu_suffix(data: bytes) -> bool:
    """True if ``data`` ends in a well-formed suffix whose CRC matches."""
    try:
        return verify_dfu_suffix(data).crc_ok
    except FormatError:
        return False


def split_dfu_file(data: bytes, *, verify_crc: bool = True) -> tuple[bytes, DfuSuffix]:
    """Payload and suffix of a DFU file; with ``verify_crc`` a CRC mismatch is a FormatError."""
    check = verify_dfu_suffix(data)
    if verify_crc and not check.crc_ok:
        raise FormatError(f"DFU suffix CRC 0x{check.suffix.crc:08x} does not match the file "
                          f"(computed 0x{check.computed_crc:08x}): the file is damaged")
    return data[: check.payload_length], check.suffix


def strip_dfu_suffix(data: bytes, *, verify_crc: bool = True) -> bytes:
    """The payload without its suffix, after checking the CRC unless told not to."""
    return split_dfu_file(data, verify_crc=verify_crc)[0]


def ensure_for_device(suffix: DfuSuffix, vid: int, pid: int, did: int | None = None) -> None:
    """Refuse (UsageError) a file whose suffix names a different device than the one attached.

    A file for another board can brick it; the wildcard 0xFFFF is how a file says "any device".
    """
    if not suffix.matches(vid, pid, did):
        shown = f"{suffix.vid:04x}:{suffix.pid:04x}"
        device = f"{vid:04x}:{pid:04x}"
        if did is not None:
            shown += f" release {suffix.did:04x}"
            device += f" release {did:04x}"
        raise UsageError(f"the DFU file is for device {shown}, the device attached is {device}")
