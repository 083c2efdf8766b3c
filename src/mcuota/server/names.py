"""What a serial number, board, product, tag or file name may look like.

They end up in URL paths (``/seed002/{serial}/{file}``), topic names and file names, so they are kept to
a conservative alphabet: no slash, no ``..``, nothing a path or a shell would reinterpret. Checking at
the edge means a path-traversal attempt is a clear 400, never a file lookup.
"""

from __future__ import annotations

import re

from mcuota.server.errors import BadRequest

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise BadRequest(f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit", code=f"invalid_{what.replace(' ', '_')}")
    return value


def check_tag(value: str) -> str:
    if not isinstance(value, str) or not _TAG.match(value):
        raise BadRequest(f"invalid tag {value!r}: use 1-64 letters, digits, '.', '_', ':', '=' or '-'",
                         code="invalid_tag")
    return value


def check_file_name(value: str) -> str:
    if not isinstance(value, str) or not _FILE.match(value) or ".." in value:
        raise BadRequest(f"invalid file name {value!r}: no paths, only letters, digits, '.', '_', '+', '-'",
                         code="invalid_file_name")
    return value
