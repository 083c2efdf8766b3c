"""Small helpers every command module shares: number parsing, help formatting, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def int_arg(text: str) -> int:
    """Accept decimal, 0x hex, 0o and 0b literals and K/M suffixes (``0x20000``, ``128K``)."""
    cleaned = text.strip().replace("_", "")
    scale = 1
    if cleaned[-1:].upper() in ("K", "M"):
        scale = 1024 if cleaned[-1:].upper() == "K" else 1024 * 1024
        cleaned = cleaned[:-1]
    try:
        value = int(cleaned, 0) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def add_command(sub: Any, name: str, help_text: str, example: str, description: str | None = None
                ) -> argparse.ArgumentParser:
    """Create a subcommand whose --help ends with an example, as every mcuota command's does."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
