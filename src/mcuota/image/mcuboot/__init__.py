"""MCUboot's image format: header, TLVs, signing, verification and the slot trailer, as pure bytes.

Byte-compatible with ``imgtool sign`` 2.5 (ED25519 output is byte-identical for the same key, payload and
options), so images move freely between mcuota, imgtool and a real MCUboot. The crypto lives in
:mod:`mcuota.image.keys` and is loaded only when a key is used.

The names below are exported lazily (PEP 562): ``from mcuota.image.mcuboot import build_image`` loads
only the modules signing needs, which keeps ``mcuota image sign`` and ``verify`` start-up short.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcuota.image.mcuboot.build import BuiltImage, PublicKeyFormat, build_image, security_counter_for
    from mcuota.image.mcuboot.files import read_firmware_file, read_image_file, sign_file, verify_file
    from mcuota.image.mcuboot.header import IMAGE_MAGIC, ImageFlag, ImageHeader, looks_like_mcuboot
    from mcuota.image.mcuboot.parse import McubootImage, describe_image, parse_image
    from mcuota.image.mcuboot.tlv import Dependency, Tlv, TlvType
    from mcuota.image.mcuboot.trailer import (
        BOOT_MAGIC,
        FlagState,
        MagicState,
        SwapType,
        TrailerField,
        TrailerLayout,
        TrailerState,
        decode_trailer,
        encode_trailer,
        swap_info_byte,
        trailer_size,
        trailer_write,
    )
    from mcuota.image.mcuboot.verify import VerifyResult, VerifyStatus, verify_image

_EXPORTS = {
    "build": ("BuiltImage", "PublicKeyFormat", "build_image", "security_counter_for"),
    "files": ("read_firmware_file", "read_image_file", "sign_file", "verify_file"),
    "header": ("IMAGE_MAGIC", "ImageFlag", "ImageHeader", "looks_like_mcuboot"),
    "parse": ("McubootImage", "describe_image", "parse_image"),
    "tlv": ("Dependency", "Tlv", "TlvType"),
    "trailer": ("BOOT_MAGIC", "FlagState", "MagicState", "SwapType", "TrailerField", "TrailerLayout",
                "TrailerState", "decode_trailer", "encode_trailer", "swap_info_byte", "trailer_size",
                "trailer_write"),
    "verify": ("VerifyResult", "VerifyStatus", "verify_image"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "BOOT_MAGIC",
    "IMAGE_MAGIC",
    "BuiltImage",
    "Dependency",
    "FlagState",
    "ImageFlag",
    "ImageHeader",
    "MagicState",
    "McubootImage",
    "PublicKeyFormat",
    "SwapType",
    "Tlv",
    "TlvType",
    "TrailerField",
    "TrailerLayout",
    "TrailerState",
    "VerifyResult",
    "VerifyStatus",
    "build_image",
    "decode_trailer",
    "describe_image",
    "encode_trailer",
    "looks_like_mcuboot",
    "parse_image",
    "read_firmware_file",
    "read_image_file",
    "security_counter_for",
    "sign_file",
    "swap_info_byte",
    "trailer_size",
    "trailer_write",
    "verify_file",
    "verify_image",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
