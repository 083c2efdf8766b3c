"""Reading the running version off the console, including text cut off mid-banner."""

from __future__ import annotations

import pytest

from mcuota.emu.banner import PROMPT, parse_banner_version, prompt_seen, version_seen

BANNER = "\r\nInside Test Application!!\r\nsample-app v2.0.0 (features 3)\r\n> "


@pytest.mark.parametrize(("text", "version"), [
    (BANNER, "2.0.0"),
    ("sample-app v1.0.1 (features 1)\r\n", "1.0.1"),
    ("app v3.1.4-rc.1+build.7\r\n", "3.1.4-rc.1+build.7"),
    ("sample-app v1.0.0 (features 1)\r\n> version\r\nsample-app v2.0.0 (features 3)\r\n", "2.0.0"),
    ("sample-app v2.0", None),          # cut off between two UART writes
    ("sample-app v2.0.0", None),        # 2.0.0 or 2.0.01? not yet decided
    ("no banner here\r\n", None),
    ("", None),
])
def test_parse_banner_version(text: str, version: str | None) -> None:
    assert parse_banner_version(text) == version


def test_stop_conditions() -> None:
    assert prompt_seen(BANNER)
    assert not prompt_seen(BANNER[:-2])
    assert PROMPT == "\r\n> "
    assert version_seen("sample-app v2.0.0 (")
    assert not version_seen("sample-app v2.0.")
