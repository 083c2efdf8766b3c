"""What the firmware says about itself on its console, as the test of what a device really runs.

A device "runs 2.0.0" only when the emulated core prints ``sample-app v2.0.0``: the version in an
image header or the agent's bookkeeping can disagree with the code that actually booted (a swap
that did not happen, a revert, an image built from the wrong tree), and the banner cannot.
These helpers are also the stop conditions a boot is usually run with.
"""

from __future__ import annotations

import re

#: What the sample application's shell prints when it is ready for a command.
PROMPT = "\r\n> "

# "name vMAJOR.MINOR.PATCH[-pre][+build]" followed by something that ends the version (a space,
# "(", end of line): a version cut in half by a stop between two UART writes must not match.
_BANNER = re.compile(
    r"(?P<name>[A-Za-z0-9_.-]+) v(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)"
    r"(?=[\s(,;])")


def parse_banner_version(text: str) -> str | None:
    """The version the firmware announced last (``"sample-app v2.0.0 (features 3)"`` → ``"2.0.0"``).

    The last banner wins: after a software reset or a ``version`` command the newest line is what runs.
    """
    versions = [match.group("version") for match in _BANNER.finditer(text)]
    return versions[-1] if versions else None


def prompt_seen(text: str) -> bool:
    """Stop condition: the shell has printed its prompt, so start-up is over and input is polled."""
    return PROMPT in text


def version_seen(text: str) -> bool:
    """Stop condition: a complete version banner has been printed."""
    return parse_banner_version(text) is not None
