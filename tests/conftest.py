"""Shared fixtures: the sample firmware and a way to run the ``mcuota`` command as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mcuota.samples import sample_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sample() -> Callable[..., Path]:
    """``sample("mcuboot-f407", "2.0.0", "bin")`` → path of a shipped sample firmware file."""
    return sample_path


def run_mcuota(*args: str | os.PathLike[str], check: bool = False, cwd: Path | None = None,
               input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mcuota`` console script in a child process, exactly as a user would."""
    exe = Path(sys.executable).with_name("mcuota")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "mcuota.cli.main"])]
    proc = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False,
                          input=None if input_bytes is None else input_bytes.decode())
    if check and proc.returncode != 0:
        raise AssertionError(f"mcuota {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture
def mcuota() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_mcuota


def require_tool(name: str) -> str:
    """Path of a field tool; skips (with the install hint) only when it is genuinely absent."""
    path = shutil.which(name) or (
        str(Path(sys.executable).with_name(name)) if Path(sys.executable).with_name(name).exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: scripts/setup.sh should have installed it")
        pytest.skip(f"{name} is not installed (scripts/setup.sh installs it)")
    return path
