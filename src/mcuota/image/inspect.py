"""Recognise any image or firmware file mcuota knows and describe it, for ``mcuota image info``.

Detection goes from the most specific mark to the least: a DfuSe container and a DFU suffix wrap
other content (so they are unwrapped and the inner payload described too), then the header formats
by magic (MCUboot, Interrupt, seed-001), the Gizwits sidecar, the firmware containers (ELF, HEX,
SREC), and last a raw binary, which is described by its vector table when it looks like one. Every
describer lives with its format; this module only decides which one applies.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from mcuota.errors import FormatError
from mcuota.image import gizwits, interrupt, stm32_header
from mcuota.image.dfu import has_dfu_suffix, verify_dfu_suffix
from mcuota.image.dfuse import looks_like_dfuse, parse_dfuse
from mcuota.image.firmware import detect_kind, parse_firmware
from mcuota.image.mcuboot import describe_image, looks_like_mcuboot


def detect_format(data: bytes, name: str | None = None) -> str:
    """The format name ``image info`` would report for ``data``."""
    return str(inspect_image(data, name)["format"])


def inspect_image(data: bytes, name: str | None = None) -> dict[str, Any]:
    """A JSON-able description of ``data``; raises :class:`FormatError` when its own mark is broken."""
    if not data:
        raise FormatError(f"{name or 'input'} is empty")
    if looks_like_dfuse(data):
        return _describe_dfuse(data)
    if has_dfu_suffix(data):
        return _describe_dfu(data, name)
    if looks_like_mcuboot(data):
        return describe_image(data)
    if interrupt.looks_like(data):
        return interrupt.describe(data)
    if stm32_header.looks_like(data):
        return stm32_header.describe(data)
    if gizwits.looks_like(data):
        return gizwits.describe(data)
    kind = detect_kind(data, name)
    if kind != "bin":
        firmware = parse_firmware(data, kind=kind, name=name)
        flat = firmware.contiguous()
        return {
            "format": kind,
            "segments": [{"address": s.address, "size": len(s.data)} for s in firmware.segments],
            "start": firmware.start,
            "end": firmware.end,
            "entry": firmware.entry,
            "sha256": hashlib.sha256(flat).hexdigest(),
            **_vector_summary(flat),
        }
    return {"format": "raw", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            **_vector_summary(data)}


def _vector_summary(data: bytes) -> dict[str, Any]:
    """Initial SP and reset handler when the first words look like a Cortex-M vector table."""
    if len(data) < 8:
        return {}
    sp, reset = struct.unpack_from("<II", data)
    if sp == 0xFFFFFFFF or not reset & 1:
        return {}
    return {"initial_sp": sp, "reset_handler": reset}


def _describe_dfu(data: bytes, name: str | None) -> dict[str, Any]:
    check = verify_dfu_suffix(data)
    suffix = check.suffix
    inner = data[: check.payload_length]
    info: dict[str, Any] = {
        "format": "dfu",
        "vid": suffix.vid, "pid": suffix.pid, "did": suffix.did, "bcd_dfu": suffix.bcd_dfu,
        "crc": suffix.crc, "crc_ok": check.crc_ok, "payload_size": len(inner),
    }
    try:
        info["payload"] = inspect_image(inner, name)
    except FormatError as exc:
        info["payload"] = {"format": "unknown", "error": str(exc)}
    return info


def _describe_dfuse(data: bytes) -> dict[str, Any]:
    parsed = parse_dfuse(data)
    return {
        "format": "dfuse",
        "vid": parsed.suffix.vid, "pid": parsed.suffix.pid, "did": parsed.suffix.did,
        "targets": [
            {"alternate": t.alternate, "name": t.name,
             "elements": [{"address": e.address, "size": len(e.data),
                           "sha256": hashlib.sha256(e.data).hexdigest()} for e in t.elements]}
            for t in parsed.targets
        ],
    }
