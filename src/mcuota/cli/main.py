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

# Command groups by name, in the order --help lists them; each module defines ``register(subparsers)``
# and may define ``register_only(subparsers, rest)`` to build just the verb that ``rest`` names.
COMMANDS = {
    "keys": "mcuota.cli.keys_cmd",
    "image": "mcuota.cli.image_cmd",
    "demo": "mcuota.cli.demo_cmd",
    "emulate": "mcuota.cli.emulate_cmd",
    "boot": "mcuota.cli.boot_cmd",
    "serve": "mcuota.cli.serve_cmd",
    "trust": "mcuota.cli.trust_cmd",
    "release": "mcuota.cli.release_cmd",
    "device": "mcuota.cli.device_cmd",
    "rollout": "mcuota.cli.rollout_cmd",
    "flash": "mcuota.cli.flash_cmd",
    "dfu": "mcuota.cli.dfu_cmd",
    "sim": "mcuota.cli.sim_cmd",
    "agent": "mcuota.cli.agent_cmd",
}
COMMAND_MODULES = tuple(COMMANDS.values())


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors say one line and exit 2 like every other mcuota error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (given ``argv`` naming a command) only the parts that command needs: a
    signing step in a firmware build should not pay for building every other command's parser."""
    from mcuota import __version__

    parser = _Parser(
        prog="mcuota",
        description="Over-the-air firmware updates for microcontrollers.",
        epilog="Run 'mcuota COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"mcuota {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    words = list(argv or ())
    first = next((i for i, w in enumerate(words) if not w.startswith("-")), None)
    chosen = words[first] if first is not None else None
    if chosen in COMMANDS and not any(w in ("-h", "--help") for w in words[: first or 0]):
        module = importlib.import_module(COMMANDS[chosen])
        only = getattr(module, "register_only", None)
        if only is not None:
            only(sub, words[(first or 0) + 1 :])
        else:
            module.register(sub)
        return parser
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*words, "--help"])
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
