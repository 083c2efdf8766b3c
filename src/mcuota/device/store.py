"""A simulated device's state directory: ``device.json`` (what it is), ``token`` (its credential, mode
0600) and one ``flash-<device>.bin`` per flash part (contents, wear and modeled time), so a device can be
created by one command, run by another process and inspected by a third, like a board on a bench."""

from __future__ import annotations

import os
from pathlib import Path

from mcuota.boot.board import Board
from mcuota.device.config import DeviceConfig
from mcuota.device.layouts import device_layout
from mcuota.errors import UsageError
from mcuota.flash.persist import load_flash, save_flash
from mcuota.fsutil import atomic_write

CONFIG = "device.json"
TOKEN = "token"  # noqa: S105 - a file name, not a secret


def flash_file(directory: Path, device: str) -> Path:
    return directory / f"flash-{device}.bin"


def save_device(directory: str | os.PathLike[str], config: DeviceConfig, board: Board,
                token: str | None = None) -> None:
    """Write the whole state; each file atomically, flash first so a config never names missing flash."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name, flash in board.flashes.items():
        save_flash(flash, flash_file(path, name))
    if token is not None:
        atomic_write(path / TOKEN, token.encode() + b"\n", mode=0o600)
    atomic_write(path / CONFIG, config.to_json().encode())


def save_flash_state(directory: str | os.PathLike[str], board: Board) -> None:
    for name, flash in board.flashes.items():
        save_flash(flash, flash_file(Path(directory), name))


def load_device(directory: str | os.PathLike[str]) -> tuple[DeviceConfig, Board, str]:
    """(configuration, board with its saved flash, token or "")."""
    path = Path(directory)
    config_path = path / CONFIG
    if not config_path.is_file():
        raise UsageError(f"{path} is not a simulated device's state directory (no {CONFIG}; create one with "
                         "mcuota sim device create)")
    config = DeviceConfig.from_json(config_path.read_text(encoding="utf-8"))
    board = Board(device_layout(config.layout, keys=config.keys))
    for name, flash in board.flashes.items():
        load_flash(flash, flash_file(path, name))
    token_path = path / TOKEN
    token = token_path.read_text(encoding="utf-8").strip() if token_path.is_file() else ""
    return config, board, token
