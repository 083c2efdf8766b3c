"""``mcuota image …``: the image toolkit's command group; each verb family lives in its own module."""

from __future__ import annotations

import importlib
from typing import Any

IMAGE_MODULES = (
    "mcuota.cli.image_sign_cmd",     # sign, verify
    "mcuota.cli.image_info_cmd",     # info
    "mcuota.cli.image_build_cmd",    # build (seed formats)
    "mcuota.cli.image_convert_cmd",  # convert, bin2c, dfu
)


def register(sub: Any) -> None:
    parser = sub.add_parser("image", help="build, sign, verify, inspect and convert firmware images",
                            description="Build, sign, verify, inspect and convert firmware images.")
    verbs = parser.add_subparsers(dest="image_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True
    for name in IMAGE_MODULES:
        importlib.import_module(name).register(verbs)
