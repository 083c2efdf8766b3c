"""Deciding whether uploaded bytes may become a release: parsed and verified with :mod:`mcuota.image`
exactly as the device's bootloader will, before anything is stored.

Accepted formats are those that carry a version and an integrity check a bootloader enforces: MCUboot
(hash, and signature against the trusted keys), the Interrupt DFU header (CRC-32) and seed 001's
stm32-header (CRC-32, either variant). A raw binary carries neither, so it is refused unless the
operator says what it is: ``image_format="gizwits"`` with a version is seed 000's bare application,
whose integrity the Gizwits MCU checks by the size and MD5 the job carries beside the bytes; the
server then only checks that it is a Cortex-M application that fits the APP partition. Everything else
(an ELF, garbage, an unlabelled raw binary) is refused, since the server could not gate versions on
it. Refusals are :class:`~mcuota.server.errors.Rejected` with a ``code`` a client can act on:

``not_an_image``  bytes no supported bootloader would accept (malformed, truncated, unknown format)
``tampered``      well-formed, but the hash or CRC does not match the content
``unsigned``      no signature while signatures are required (or no trusted key to check it against)
``untrusted_key`` signed, but by no key trusted for this board
``wrong_board``   the image names another board (MCUboot: the protected TLV :data:`BOARD_TLV`)
``version_required`` a gizwits upload without the version its bytes cannot carry
``too_large``     a gizwits application over the 26 KB APP partition
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mcuota.boot.stm32_header import version_of
from mcuota.errors import FormatError, UsageError
from mcuota.image import gizwits, interrupt, stm32_header
from mcuota.image.inspect import detect_format
from mcuota.image.interrupt import parse_interrupt_image
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import VerifyStatus, looks_like_mcuboot, verify_image
from mcuota.image.mcuboot.tlv import SIGNATURE_TYPES
from mcuota.image.version import ImageVersion
from mcuota.server.errors import BadRequest, Rejected

FORMATS = ("auto", "gizwits")
"""What an upload may say it is: ``auto`` (recognised from its bytes) or a format whose bytes carry no
mark of their own."""

SRAM = range(0x2000_0000, 0x2002_0000)
FLASH = range(0x0800_0000, 0x0810_0000)

BOARD_TLV = 0x00B0
"""Vendor-range protected TLV whose UTF-8 value names the board an MCUboot image is built for
(``mcuota image sign --custom-tlv 0xb0 BOARD`` or ``imgtool sign --custom-tlv 0xb0 BOARD``). Being
protected, it is covered by the signature; images without it fit any board they are uploaded for."""


@dataclass(frozen=True)
class CheckedImage:
    format: str
    version: ImageVersion
    sha256: str
    size: int
    signed: bool
    """A signature was verified against a trusted key."""
    key_hash: str | None
    board: str | None
    """The board the image names for itself, if it does."""
    summary: str
    md5: str = ""
    """Hex MD5 of the whole upload: what a Gizwits MCU checks and writes into its FLAG record."""
    soft_ver: str | None = None
    """The 8-digit Gizwits softVer, for gizwits releases."""


def check_image(data: bytes, *, board: str, trusted: Sequence[PublicKey], require_signatures: bool,
                image_format: str = "auto", version: str | None = None) -> CheckedImage:
    """Verify ``data`` as a release for ``board``; raises :class:`Rejected` saying why not."""
    if image_format not in FORMATS:
        raise BadRequest(f"unknown release format {image_format!r}; one of {', '.join(FORMATS)}",
                         code="invalid_format")
    if version is not None and image_format != "gizwits":
        raise BadRequest("a version is given only with format=gizwits; the other formats carry their own",
                         code="invalid_version")
    if not data:
        raise Rejected("the upload is empty", code="not_an_image")
    if image_format == "gizwits":
        checked = _check_gizwits(data, version, require_signatures)
    else:
        checked = _check_auto(data, board, trusted, require_signatures)
    return replace(checked, md5=hashlib.md5(data, usedforsecurity=False).hexdigest())


def _check_auto(data: bytes, board: str, trusted: Sequence[PublicKey], require_signatures: bool
                ) -> CheckedImage:
    if looks_like_mcuboot(data):
        return _check_mcuboot(data, board, trusted, require_signatures)
    if interrupt.looks_like(data):
        return _check_interrupt(data, require_signatures)
    if stm32_header.looks_like(data):
        return _check_stm32(data, require_signatures)
    try:
        kind = detect_format(data)
    except FormatError as exc:
        raise Rejected(f"not a firmware image: {exc}", code="not_an_image") from None
    raise Rejected(f"not a release image: {kind} data carries no version a bootloader checks (upload an "
                   "MCUboot image, e.g. from mcuota image sign; a Gizwits application with format=gizwits "
                   "and its version)", code="not_an_image")


def _check_mcuboot(data: bytes, board: str, trusted: Sequence[PublicKey], require_signatures: bool
                   ) -> CheckedImage:
    result = verify_image(data, trusted)
    if result.status is VerifyStatus.MALFORMED or result.image is None or result.version is None:
        raise Rejected(f"malformed MCUboot image: {result.reason}", code="not_an_image")
    if result.status is VerifyStatus.BAD_HASH:
        raise Rejected(f"tampered MCUboot image: {result.reason}", code="tampered")
    image = result.image
    has_signature = any(tlv.type in SIGNATURE_TYPES for tlv in image.unprotected)
    if result.status is VerifyStatus.NO_MATCHING_SIGNATURE:
        if has_signature:
            raise Rejected(f"signature check failed for board {board}: {result.reason}", code="untrusted_key")
        if require_signatures:
            raise Rejected("the image is not signed and this server requires signatures", code="unsigned")
    elif not result.signature_checked and require_signatures:
        raise Rejected(f"signatures are required but no signing key is trusted for board {board} (add one "
                       "with mcuota trust add)", code="unsigned")
    claimed = None
    named = image.find(BOARD_TLV)
    if named:
        claimed = named[0].value.decode("utf-8", "replace")
        if claimed != board:
            raise Rejected(f"the image is built for board {claimed!r}, not {board!r}", code="wrong_board")
    key_hash = None
    if result.signature_checked and result.key_index is not None:
        key_hash = trusted[result.key_index].key_hash.hex()
    return CheckedImage("mcuboot", result.version, hashlib.sha256(data).hexdigest(), len(data),
                        result.signature_checked, key_hash, claimed, result.reason)


def _check_interrupt(data: bytes, require_signatures: bool) -> CheckedImage:
    try:
        image = parse_interrupt_image(data)
    except FormatError as exc:
        raise Rejected(f"malformed interrupt image: {exc}", code="not_an_image") from None
    if zlib.crc32(image.data) != image.header.crc:
        raise Rejected("tampered interrupt image: the CRC-32 does not match its data", code="tampered")
    if require_signatures:
        raise Rejected("interrupt images carry no signature and this server requires signatures",
                       code="unsigned")
    return CheckedImage("interrupt", image.header.version, hashlib.sha256(data).hexdigest(), len(data),
                        False, None, None, "crc32 ok")


def _check_stm32(data: bytes, require_signatures: bool) -> CheckedImage:
    try:
        image = stm32_header.parse_stm32_image(data)
    except FormatError as exc:
        raise Rejected(f"malformed stm32-header image: {exc}", code="not_an_image") from None
    variants = stm32_header.matching_variants(data)
    if not variants:
        raise Rejected("tampered stm32-header image: the CRC matches neither crc32 nor crc32-stm32",
                       code="tampered")
    if require_signatures:
        raise Rejected("stm32-header images carry no signature and this server requires signatures",
                       code="unsigned")
    return CheckedImage("stm32-header", version_of(image.header.version), hashlib.sha256(data).hexdigest(),
                        len(data), False, None, None, f"{variants[0]} ok")


def _check_gizwits(data: bytes, version: str | None, require_signatures: bool) -> CheckedImage:
    if version is None:
        raise Rejected("a gizwits application carries no version: give one (version=x.y.z)",
                       code="version_required")
    try:
        parsed = ImageVersion.parse(version)
        soft_ver = gizwits.soft_ver_from_version(parsed)
    except UsageError as exc:
        raise BadRequest(str(exc), code="invalid_version") from None
    if len(data) > gizwits.APP_SIZE:
        raise Rejected(f"gizwits application is {len(data)} bytes, over the {gizwits.APP_SIZE}-byte APP "
                       "partition", code="too_large")
    _check_cortex_m_application(data)
    if require_signatures:
        raise Rejected("gizwits applications carry no signature and this server requires signatures",
                       code="unsigned")
    return CheckedImage(gizwits.FORMAT, parsed, hashlib.sha256(data).hexdigest(), len(data), False, None,
                        None, f"gizwits application, softVer {soft_ver}", soft_ver=soft_ver)


def _check_cortex_m_application(data: bytes) -> None:
    """The first two words of a Cortex-M application are its initial stack pointer and reset vector:
    checking them is what separates a raw application from any other file named .bin."""
    if len(data) < 8:
        raise Rejected(f"not a Cortex-M application: {len(data)} bytes, too short for a vector table",
                       code="not_an_image")
    stack, reset = struct.unpack_from("<II", data)
    if stack not in SRAM:
        raise Rejected(f"not a Cortex-M application: initial stack pointer 0x{stack:08x} at offset 0 is "
                       "outside SRAM 0x20000000..0x2001ffff", code="not_an_image")
    if not reset & 1 or reset not in FLASH:
        raise Rejected(f"not a Cortex-M application: reset vector 0x{reset:08x} at offset 4 is not an odd "
                       "(Thumb) address in flash 0x08000000..0x080fffff", code="not_an_image")
