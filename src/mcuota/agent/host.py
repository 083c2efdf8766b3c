"""The agent outside the simulation: a Linux host (a gateway, a test rig, an embedded Linux board) that
stages updates in a file instead of a flash partition.

The slot is a directory: ``slot.bin`` takes the download, ``journal`` holds the same 32-byte CRC-closed
records a device keeps in flash (so a host that loses power mid-download resumes from the last step whose
bytes still check out), and ``state.json`` says what runs, what is requested and whether it is confirmed.
Every write is flushed and fsync'ed before the journal records it, which is what a flash program gives
a microcontroller for free.

A host has no bootloader to swap slots, so :meth:`HostSlot.install` is that step: it moves the verified
image to ``current.bin`` (an atomic rename) — or hands it to an install command — and marks it a trial;
the agent's next start self-tests and confirms it, or :meth:`HostSlot.revert` puts the previous one
back, as MCUboot would.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcuota.agent.config import AgentConfig
from mcuota.agent.core import Agent, Clock, Status
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.storage import (
    RECORD_SIZE,
    JournalState,
    Kind,
    Storage,
    pack_record,
    parse_journal,
)
from mcuota.agent.transport import Transport
from mcuota.boot.strategy import BootAction, BootResult
from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.fsutil import atomic_write
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import ImageHeader, looks_like_mcuboot, verify_image
from mcuota.image.version import ImageVersion

FORMATS = ("mcuboot", "raw")
JOURNAL_LIMIT = 64 * 1024


class HostSlot(Storage):
    """A :class:`~mcuota.agent.storage.Storage` on files in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, image_format: str = "mcuboot",
                 keys: Sequence[PublicKey] = (), room: int = 64 * 1024 * 1024) -> None:
        # no flash: the medium methods below replace the base class's flash ones
        if image_format not in FORMATS:
            raise UsageError(f"host slot format {image_format!r}: one of {', '.join(FORMATS)}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.image_format = image_format
        self.keys = tuple(keys)
        self.start = 0
        self.room = room
        self.slot_path = self.dir / "slot.bin"
        self.journal_path = self.dir / "journal"
        self.state_path = self.dir / "state.json"
        self.current_path = self.dir / "current.bin"
        self.previous_path = self.dir / "previous.bin"

    # -- state.json
    def state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.state_path} is unreadable: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _save_state(self, **changes: Any) -> None:
        state = {**self.state(), **changes}
        atomic_write(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def set_running(self, version: ImageVersion) -> None:
        """What the host runs today (its first installation, done by other means)."""
        self._save_state(running=str(version), confirmed=True, pending=None)

    # -- journal on a file
    def read_journal(self) -> JournalState:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        whole = len(raw) - len(raw) % RECORD_SIZE       # a record cut by a power loss is dropped
        return parse_journal(raw[:whole] + b"\xff" * RECORD_SIZE)

    def _append(self, kind: Kind, *fields: int) -> None:
        size = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        if size >= JOURNAL_LIMIT:
            raise AgentError(AgentCode.STORAGE, f"progress journal {self.journal_path} is full")
        with self.journal_path.open("ab") as journal:
            journal.truncate(size - size % RECORD_SIZE)
            journal.write(pack_record(kind, *fields))
            journal.flush()
            os.fsync(journal.fileno())

    def _erase_journal(self) -> None:
        with self.journal_path.open("wb") as journal:
            os.fsync(journal.fileno())

    # -- the slot file
    def _verified_prefix(self, state: JournalState, total: int) -> int:
        offset = 0
        try:
            with self.slot_path.open("rb") as slot:
                while offset < total and offset in state.steps:
                    length, crc = state.steps[offset]
                    slot.seek(offset)
                    if length <= 0 or zlib.crc32(slot.read(length)) != crc:
                        break
                    offset += length
        except FileNotFoundError:
            return 0
        return offset

    def _clear_from(self, prefix: int, total: int) -> None:
        with self.slot_path.open("ab") as slot:
            slot.truncate(prefix)
            os.fsync(slot.fileno())

    def _regions(self, total: int) -> list[tuple[int, int]]:
        return []

    def write_step(self, offset: int, data: bytes) -> None:
        with self.slot_path.open("r+b") as slot:
            slot.seek(offset)
            slot.write(data)
            slot.flush()
            os.fsync(slot.fileno())
        self._append(Kind.STEP, offset, len(data), zlib.crc32(data))

    def read_image(self, total: int) -> bytes:
        with self.slot_path.open("rb") as slot:
            return slot.read(total)

    # -- the format
    def check_format(self, head: bytes) -> None:
        if self.image_format == "mcuboot" and not looks_like_mcuboot(head):
            raise AgentError(AgentCode.WRONG_FORMAT, "not an MCUboot image")

    def version_in(self, head: bytes) -> ImageVersion | None:
        if self.image_format == "mcuboot":
            return ImageHeader.unpack(head[:32]).version
        return None

    def _verify(self, image: bytes, version: ImageVersion) -> None:
        if self.image_format == "raw":
            return                                 # the job's SHA-256 (checked by the caller) is all
        try:
            result = verify_image(image, self.keys)
        except (FormatError, CapacityError) as exc:
            raise AgentError(AgentCode.VERIFY, str(exc)) from None
        if not result.ok:
            raise AgentError(AgentCode.VERIFY, result.reason)
        if result.version is None or result.version.triple != version.triple:
            raise AgentError(AgentCode.VERIFY, f"image carries version {result.version}, the job offered "
                             f"{version}")

    def verify(self, total: int, version: ImageVersion, sha256: str = "") -> None:
        if self.image_format == "raw" and not sha256:
            raise AgentError(AgentCode.VERIFY, "a raw image can only be checked against the job's Sha256, "
                             "and the job gives none")
        super().verify(total, version, sha256)

    # -- request, install, confirm
    def _commit(self, total: int) -> None:
        version = self.read_journal().version
        self._save_state(pending={"version": str(version), "size": total})

    def request_stands(self) -> bool:
        pending = self.state().get("pending")
        return isinstance(pending, dict) and self.slot_path.exists()

    def running_version(self) -> ImageVersion | None:
        running = self.state().get("running")
        return ImageVersion.parse(running) if isinstance(running, str) else None

    def confirm(self) -> None:
        if not self.state().get("confirmed"):
            self._save_state(confirmed=True)

    def install(self, command: Sequence[str] = ()) -> ImageVersion | None:
        """The host's bootloader step: the requested image becomes current, on trial. ``command`` (with
        ``{image}`` replaced by the staged file) installs it elsewhere first; a failure leaves all as was."""
        state = self.state()
        pending = state.get("pending")
        if not isinstance(pending, dict):
            return None
        size = int(pending["size"])
        image = self.dir / "install.bin"
        atomic_write(image, self.read_image(size))
        if command:
            import subprocess  # noqa: PLC0415 - only hosts with an install hook run one

            argv = [part.replace("{image}", str(image)) for part in command]
            done = subprocess.run(argv, check=False, capture_output=True, text=True)
            if done.returncode != 0:
                image.unlink(missing_ok=True)
                raise AgentError(AgentCode.STORAGE, f"install command exited {done.returncode}: "
                                 f"{(done.stderr or done.stdout).strip()[:200]}")
        if self.current_path.exists():
            shutil.copyfile(self.current_path, self.previous_path)
        os.replace(image, self.current_path)
        version = ImageVersion.parse(str(pending["version"]))
        self._save_state(running=str(version), previous=state.get("running"), pending=None, confirmed=False)
        return version

    def revert(self) -> ImageVersion | None:
        """Put the previous image back when the current one never confirmed (the watchdog's reset)."""
        state = self.state()
        previous = state.get("previous")
        if state.get("confirmed", True) or not isinstance(previous, str):
            return None
        if self.previous_path.exists():
            os.replace(self.previous_path, self.current_path)
        self._save_state(running=previous, previous=None, confirmed=True)
        return ImageVersion.parse(previous)

    def staged_image_back(self, state: JournalState, target: ImageVersion) -> bool:
        return bool(state.trial)



class _RealClock:
    def sleep(self, seconds: float) -> None:
        import time  # noqa: PLC0415

        time.sleep(seconds)


def run_host(slot: HostSlot, transport: Transport, config: AgentConfig, *, install: Sequence[str] = (),
             self_test: Sequence[str] = (), interval: float = 60.0, checks: int | None = None,
             until: str | None = None, on_event: Callable[[str], None] = lambda text: None,
             clock: Clock | None = None) -> ImageVersion | None:
    """The host's life: start (self-test a trial, confirm or revert), then check every ``interval`` s,
    install what the agent staged and start again. Returns the running version."""
    clock = clock or _RealClock()

    def test(boot: BootResult, version: ImageVersion) -> bool:
        if not self_test:
            return True
        import subprocess  # noqa: PLC0415

        argv = [part.replace("{version}", str(version)) for part in self_test]
        return subprocess.run(argv, check=False, capture_output=True).returncode == 0

    def agent() -> Agent:
        return Agent(config, transport, slot, clock=clock, self_test=test)

    def start() -> None:
        boot = BootResult(BootAction.JUMP, 0, "current", "host start")
        outcome = agent().on_boot(boot)
        if outcome.status is Status.TRIAL_FAILED and slot.revert() is not None:
            outcome = agent().on_boot(boot)
        on_event(f"start: runs {slot.running_version()} ({outcome.status.value}) {outcome.reason}".rstrip())

    start()
    made = 0
    while checks is None or made < checks:
        running = slot.running_version()
        if until is not None and running is not None and str(running) == until:
            break
        made += 1
        outcome = agent().check_for_update()
        on_event(f"check: {outcome.status.value} {outcome.reason}".rstrip())
        if outcome.status is Status.STAGED:
            installed = slot.install(install)
            on_event(f"installed {installed}")
            start()
            continue
        if checks is not None and made >= checks:
            break
        clock.sleep(interval)
    return slot.running_version()
