"""``mcuota image …``: the image toolkit's command group; each verb family lives in its own module."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

# verb -> the module that registers it (a module may register several verbs)
VERBS = {
    "sign": "mcuota.cli.image_sign_cmd",
    "verify": "mcuota.cli.image_sign_cmd",
    "info": "mcuota.cli.image_info_cmd",
    "build": "mcuota.cli.image_build_cmd",
    "checksum": "mcuota.cli.image_build_cmd",
    "convert": "mcuota.cli.image_convert_cmd",
    "bin2c": "mcuota.cli.image_convert_cmd",
    "dfu": "mcuota.cli.image_convert_cmd",
    "dfuse": "mcuota.cli.image_convert_cmd",
}
IMAGE_MODULES = tuple(dict.fromkeys(VERBS.values()))


def _group(sub: Any) -> Any:
    parser = sub.add_parser("image", help="build, sign, verify, inspect and convert firmware images",
                            description="Build, sign, verify, inspect and convert firmware images.")
    verbs = parser.add_subparsers(dest="image_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True
    return verbs


def register(sub: Any) -> None:
    verbs = _group(sub)
    for name in IMAGE_MODULES:
        importlib.import_module(name).register(verbs)


def register_only(sub: Any, rest: Sequence[str]) -> None:
    """Register just the module of the verb in ``rest`` (all of them for help or an unknown verb)."""
    verb = next((w for w in rest if not w.startswith("-")), None)
    if verb not in VERBS or any(w in ("-h", "--help") for w in rest[: rest.index(verb)]):
        register(sub)
        return
    importlib.import_module(VERBS[verb]).register(_group(sub))
