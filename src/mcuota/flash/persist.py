"""Saving a simulated device's flash so it survives a process restart.

A fleet simulation stops and resumes; a device must come back with exactly the bytes (and the wear) it
had, or a half-finished update would silently heal. The file is written with
:func:`mcuota.fsutil.atomic_write`, so a crash of the *simulator* never leaves a half-written flash file,
and it carries the part's geometry id and a SHA-256 so a file for another part, or a damaged one, is
refused instead of loaded.

Layout (little-endian)::

    b"MCUFLASH" · u16 format (1) · u32 header length · header (UTF-8 JSON: part, geometry, size,
    sectors, elapsed) · contents (size bytes) · wear (u32 per sector) · SHA-256 of everything before
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass

from mcuota.errors import FormatError, IntegrityError, UsageError
from mcuota.flash.nor import NorFlash
from mcuota.flash.part import Duration
from mcuota.fsutil import atomic_write, read_input

MAGIC = b"MCUFLASH"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHI")
_DIGEST = 32


@dataclass(frozen=True)
class SavedFlash:
    """A parsed flash file: which part it belongs to and the state to put back."""

    part: str
    geometry_id: str
    data: bytes
    wear: tuple[int, ...]
    elapsed: Duration


def build_flash_state(flash: NorFlash) -> bytes:
    snap = flash.snapshot()
    header = json.dumps({
        "part": flash.part.name, "geometry": snap.geometry_id, "size": len(snap.data),
        "sectors": len(snap.wear), "elapsed": list(snap.elapsed),
    }, sort_keys=True).encode()
    body = b"".join((_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)), header, snap.data,
                     struct.pack(f"<{len(snap.wear)}I", *snap.wear)))
    return body + hashlib.sha256(body).digest()


def parse_flash_state(blob: bytes) -> SavedFlash:
    if len(blob) < _PREFIX.size + _DIGEST:
        raise FormatError(f"flash file is {len(blob)} bytes: too short for a header (offset 0)")
    magic, version, header_length = _PREFIX.unpack_from(blob, 0)
    if magic != MAGIC:
        raise FormatError(f"not an mcuota flash file: magic {magic!r} at offset 0")
    if version != FORMAT_VERSION:
        raise FormatError(f"flash file format {version} at offset 8 is not supported (expected "
                          f"{FORMAT_VERSION})")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    start = _PREFIX.size
    try:
        header = json.loads(blob[start:start + header_length])
        size, sectors = int(header["size"]), int(header["sectors"])
        part, geometry_id = str(header["part"]), str(header["geometry"])
        elapsed = Duration(*(float(x) for x in header["elapsed"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"flash file header at offset {start} is malformed: {exc}") from None
    data_start = start + header_length
    expected = data_start + size + 4 * sectors
    if len(body) != expected:
        raise FormatError(f"flash file is {len(blob)} bytes, expected {expected + _DIGEST} for "
                          f"{size} bytes and {sectors} sectors (truncated or padded)")
    if hashlib.sha256(body).digest() != digest:
        raise IntegrityError(f"flash file checksum at offset {len(body)} does not match its contents")
    wear = struct.unpack_from(f"<{sectors}I", body, data_start + size)
    return SavedFlash(part, geometry_id, body[data_start:data_start + size], wear, elapsed)


def apply_flash_state(flash: NorFlash, saved: SavedFlash) -> None:
    if saved.geometry_id != flash.part.geometry_id:
        raise UsageError(f"flash file is for {saved.geometry_id}, but device {flash.name} is "
                         f"{flash.part.geometry_id}")
    flash.load_state(saved.data, saved.wear, saved.elapsed)


def save_flash(flash: NorFlash, path: str | os.PathLike[str]) -> None:
    """Write the device's contents, wear and modeled time to ``path`` atomically."""
    atomic_write(path, build_flash_state(flash))


def load_flash(flash: NorFlash, path: str | os.PathLike[str]) -> None:
    """Replace the device's state with the one saved at ``path`` (same part and geometry only)."""
    apply_flash_state(flash, parse_flash_state(read_input(path, "flash file")))
