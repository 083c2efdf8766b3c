"""Deciding whether uploaded bytes may become a release: parsed and verified with :mod:`mcuota.image`
exactly as the device's bootloader will, before anything is stored.

Accepted formats are those that carry a version and an integrity check a bootloader enforces: MCUboot
(hash, and signature against the trusted keys) and the Interrupt DFU header (CRC-32). Everything else
(a raw binary, an ELF, garbage) is refused, since the server could not gate versions on it. Refusals
are :class:`~mcuota.server.errors.Rejected` with a ``code`` a client can act on:

``not_an_image``  bytes no supported bootloader would accept (malformed, truncated, unknown format)
``tampered``      well-formed, but the hash or CRC does not match the content
``unsigned``      no signature while signatures are required (or no trusted key to check it against)
``untrusted_key`` signed, but by no key trusted for this board
``wrong_board``   the image names another board (MCUboot: the protected TLV :data:`BOARD_TLV`)
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from mcuota.errors import FormatError
from mcuota.image import interrupt
from mcuota.image.inspect import detect_format
from mcuota.image.interrupt import parse_interrupt_image
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import VerifyStatus, looks_like_mcuboot, verify_image
from mcuota.image.mcuboot.tlv import SIGNATURE_TYPES
from mcuota.image.version import ImageVersion
from mcuota.server.errors import Rejected

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


def check_image(data: bytes, *, board: str, trusted: Sequence[PublicKey], require_signatures: bool
                ) -> CheckedImage:
    """Verify ``data`` as a release for ``board``; raises :class:`Rejected` saying why not."""
    if not data:
        raise Rejected("the upload is empty", code="not_an_image")
    if looks_like_mcuboot(data):
        return _check_mcuboot(data, board, trusted, require_signatures)
    if interrupt.looks_like(data):
        return _check_interrupt(data, require_signatures)
    try:
        kind = detect_format(data)
    except FormatError as exc:
        raise Rejected(f"not a firmware image: {exc}", code="not_an_image") from None
    raise Rejected(f"not a release image: {kind} data carries no version a bootloader checks (upload an "
                   "MCUboot image, e.g. from mcuota image sign)", code="not_an_image")


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
