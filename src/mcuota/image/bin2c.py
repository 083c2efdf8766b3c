"""Bytes as a C array, for firmware embedded in a bootloader (seed 001's ota_image.h) and for public
keys compiled into MCUboot. One formatter so that both look the same and compile the same."""

from __future__ import annotations

import re

from mcuota.errors import UsageError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_c_array(data: bytes, name: str, *, per_line: int = 12, const: bool = True,
               length_name: str | None = None, header_guard: str | None = None) -> str:
    """Render ``data`` as ``const unsigned char name[] = {…};`` plus a length constant.

    With ``header_guard`` the text is a header: the array and its length are ``static`` so that including
    the header from several translation units does not define the symbol twice at link time.
    """
    if not data:
        raise UsageError("cannot render an empty input as a C array (C has no zero-length arrays)")
    if not _IDENT.match(name):
        raise UsageError(f"{name!r} is not a valid C identifier")
    length = length_name or f"{name}_len"
    if not _IDENT.match(length):
        raise UsageError(f"{length!r} is not a valid C identifier")
    lines = []
    for offset in range(0, len(data), per_line):
        chunk = data[offset : offset + per_line]
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    body = "\n".join(lines)
    qualifier = ("static " if header_guard else "") + ("const " if const else "")
    text = (f"{qualifier}unsigned char {name}[] = {{\n{body}\n}};\n"
            f"{qualifier}unsigned int {length} = {len(data)};\n")
    if header_guard:
        if not _IDENT.match(header_guard):
            raise UsageError(f"{header_guard!r} is not a valid C identifier")
        text = f"#ifndef {header_guard}\n#define {header_guard}\n\n{text}\n#endif /* {header_guard} */\n"
    return text
