"""Entry point of the ``mcuota`` command.

Start-up time is part of the product (a signing step runs in every firmware build), so this module
imports only argparse: each command group registers its parser from a small module, and a handler
imports the library modules it needs when it runs. Every deliberate failure is a
:class:`~mcuota.errors.McuotaError` and becomes one line on stderr with its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Command groups, in the order --help lists them; each module defines ``register(subparsers)``.
COMMAND_MODULES = (
    "mcuota.cli.keys_cmd",
    "mcuota.cli.image_cmd",
    "mcuota.cli.demo_cmd",
    "mcuota.cli.emulate_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors say one line and exit 2 like every other mcuota error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from mcuota import __version__

    parser = _Parser(
        prog="mcuota",
        description="Over-the-air firmware updates for microcontrollers.",
        epilog="Run 'mcuota COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"mcuota {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    from mcuota.errors import McuotaError

    try:
        return int(handler(args))
    except McuotaError as exc:
        print(f"mcuota: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mcuota: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line for the user, the traceback on request
        if os.environ.get("MCUOTA_DEBUG"):
            raise
        print(f"mcuota: internal error: {type(exc).__name__}: {exc} (set MCUOTA_DEBUG=1 for details)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
