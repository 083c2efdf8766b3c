"""Staging an update straight where the bootloader looks for it, with the download's progress kept in
the device's own flash so that it survives a reboot or a power cut, not only a dropped connection.

:class:`Storage` holds what every bootloader system shares (the journal, writing a step, keeping
verified bytes across an erase); :class:`McubootStorage` stages into MCUboot's secondary slot, and
:mod:`mcuota.agent.seed_storage` into the seed bootloaders' areas (Gizwits APP_BAK, the seed-001
staging area).

Progress is a journal in a dedicated partition (``agent`` by default): fixed 32-byte records, each
written in one program operation and closed by its own CRC-32, appended until the next update
erases the partition. A torn record fails its CRC and is skipped; an erased slot ends the journal.

* ``SESSION`` opens a download: the file, version and size it is for (a resume needs the same three).
* ``STEP`` is written only after a step's bytes are programmed, and carries their CRC-32. On resume the
  agent trusts no record blindly: it re-reads each step from flash and keeps the longest prefix whose
  CRCs match, so a torn data write (or a torn record after a complete one) is re-fetched, and nothing
  whose bytes are intact is fetched again.
* ``REQUESTED`` is written before the bootloader is asked for the image, ``TRIAL`` when the new image
  first runs (before its self-test), ``TRIAL_FAILED`` when the self-test fails, ``DONE`` when the update
  is over whichever way it ended. They let the agent tell after a reset whether it is running a
  trial, has been reverted, or was never installed.

NOR flash cannot program bytes that are not erased, and a torn write leaves the rest of its sector
dirty. Erasing that sector would lose the good steps in front of it, so the agent reads them (from
flash, not the network), erases, and programs them back; a cut during that erase loses them, and the
next resume sees their CRCs fail and fetches them again: the cost is bounded by one erase sector.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.boot.board import Board
from mcuota.boot.mcuboot import McubootStrategy
from mcuota.boot.mcuboot.trailers import read_trailer
from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.flash import NorFlash
from mcuota.image.mcuboot import ImageHeader, verify_image
from mcuota.image.mcuboot.trailer import decode_trailer
from mcuota.image.version import ImageVersion

RECORD = struct.Struct("<4sB3xIIIIII")   # magic, kind, a, b, c, d, e, crc
RECORD_SIZE = 32
MAGIC = b"OTAJ"
MAX_FILE = 256
assert RECORD.size == RECORD_SIZE


class Kind(IntEnum):
    SESSION = 1
    STEP = 2
    REQUESTED = 3
    TRIAL = 4
    TRIAL_FAILED = 5
    DONE = 6
    FILE = 7     # 16 bytes of the session's file name per record: after a reset, where to report
    UNSENT = 8   # the result of the update could not be reported (a = the report kind's number)
    SENT = 9     # ... and was reported later


def pack_version(version: ImageVersion) -> int:
    return (version.major & 0xFF) << 24 | (version.minor & 0xFF) << 16 | (version.revision & 0xFFFF)


def unpack_version(value: int) -> ImageVersion:
    return ImageVersion(value >> 24, (value >> 16) & 0xFF, value & 0xFFFF)


@dataclass(frozen=True)
class Session:
    """What a download is for; a resume continues only a download of the same session."""

    file: str
    version: ImageVersion
    total: int

    @property
    def ident(self) -> int:
        return zlib.crc32(f"{self.file}\0{self.version}\0{self.total}".encode())


@dataclass
class JournalState:
    session_ident: int | None = None
    version: ImageVersion | None = None
    total: int = 0
    step: int = 0
    steps: dict[int, tuple[int, int]] = field(default_factory=dict)   # offset -> (length, crc)
    requested: tuple[ImageVersion, ImageVersion] | None = None         # (target, previous)
    trial: bool = False
    trial_failed: bool = False
    done: bool = False
    next_slot: int = 0
    file_parts: dict[int, bytes] = field(default_factory=dict)
    unsent: int | None = None
    """The number of a result report that is still owed to the server (see :data:`REPORT_CODES`)."""

    @property
    def file(self) -> str:
        """The session's file name, or "" when a part of it is missing (a torn record)."""
        count = len(self.file_parts)
        if sorted(self.file_parts) != list(range(count)):
            return ""
        return b"".join(self.file_parts[i] for i in range(count)).rstrip(b"\0").decode("utf-8", "replace")


def pack_record(kind: Kind, *fields: int) -> bytes:
    """One 32-byte journal record, closed by the CRC-32 of the rest."""
    values = (*fields, 0, 0, 0, 0, 0)[:5]
    body = RECORD.pack(MAGIC, kind, *values, 0)[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def parse_journal(raw: bytes, erased_value: int = 0xFF) -> JournalState:
    """The journal's records up to the first erased slot; torn records are skipped."""
    state = JournalState()
    slots = len(raw) // RECORD_SIZE
    erased = bytes((erased_value,)) * RECORD_SIZE
    for slot in range(slots):
        record = raw[slot * RECORD_SIZE:(slot + 1) * RECORD_SIZE]
        if record == erased:
            state.next_slot = slot
            return state
        magic, kind, a, b, c, d, e, crc = RECORD.unpack(record)
        if magic != MAGIC or zlib.crc32(record[:-4]) != crc:
            continue          # a torn record: skipped, the next one is still read
        if kind == Kind.SESSION:
            state.session_ident, state.version, state.total, state.step = a, unpack_version(b), c, d
        elif kind == Kind.STEP:
            state.steps[a] = (b, c)
        elif kind == Kind.REQUESTED:
            state.requested = (unpack_version(a), unpack_version(b))
        elif kind == Kind.TRIAL:
            state.trial = True
        elif kind == Kind.TRIAL_FAILED:
            state.trial_failed = True
        elif kind == Kind.DONE:
            state.done = True
        elif kind == Kind.FILE:
            state.file_parts[a] = struct.pack("<IIII", b, c, d, e)
        elif kind == Kind.UNSENT:
            state.unsent = a
        elif kind == Kind.SENT:
            state.unsent = None
    state.next_slot = slots
    return state


class Storage(ABC):
    """Where one layout's agent writes an update: a staging region on one flash device plus the journal.

    Subclasses say where the region starts and how big it may get, which sectors the download and the
    request will program (so they are erased first), how to recognise and verify the image format, how
    to ask the bootloader for it and what runs now."""

    def __init__(self, board: Board, flash: NorFlash, start: int, room: int, *,
                 journal: str = "agent") -> None:
        self.board = board
        self.flash = flash
        self.start = start
        self.room = room
        self.journal_flash, self.journal_part = board.flash_of(journal)
        self.slots = self.journal_part.size // RECORD_SIZE

    # -- what a bootloader system says
    @abstractmethod
    def _regions(self, total: int) -> list[tuple[int, int]]:
        """(address, length) ranges on :attr:`flash` that the download of ``total`` bytes and the request
        program: erased before the download (keeping a verified prefix)."""

    def _controls(self) -> list[tuple[int, int]]:
        """(address, length) ranges in those regions that the request programs, outside the image: they
        must read erased before a request even when a torn one left them half-programmed."""
        return []

    @abstractmethod
    def check_format(self, head: bytes) -> None:
        """The first bytes of the download must be an image the layout's bootloader reads."""

    def version_in(self, head: bytes) -> ImageVersion | None:
        """The version an image announces in its first bytes (the direct flow's only source), if any."""
        return None

    @abstractmethod
    def _verify(self, image: bytes, version: ImageVersion) -> None:
        """The format's own checks (hash, signature, CRC) and the version the job promised."""

    @abstractmethod
    def _commit(self, total: int) -> None:
        """Ask the bootloader to install the verified ``total`` bytes at :attr:`start`."""

    @abstractmethod
    def request_stands(self) -> bool:
        """Whether a complete request for the staged image is in flash."""

    @abstractmethod
    def running_version(self) -> ImageVersion | None:
        """The version the bootloader will start, if it can tell."""

    def staged_image_back(self, state: JournalState, target: ImageVersion) -> bool:
        """Whether the staged image is back with no request standing: what a bootloader that reverts
        leaves. Systems without a revert never do."""
        return False

    def confirm(self) -> None:  # noqa: B027 - only systems with a revert need a confirmation
        """The running image passed its self-test; a no-op where the bootloader cannot revert."""

    def describe(self) -> dict[str, object]:
        """What the bootloader will see, for a status display: what runs and whether a request stands."""
        running = self.running_version()
        return {"running": None if running is None else str(running), "request": self.request_stands()}

    # -- journal
    def read_journal(self) -> JournalState:
        raw = self.journal_flash.read(self.journal_part.address, self.journal_part.size)
        return parse_journal(raw, self.journal_flash.erased_value)

    def _append(self, kind: Kind, *fields: int) -> None:
        slot = self.read_journal().next_slot
        if slot >= self.slots:
            raise AgentError(AgentCode.STORAGE, f"progress journal {self.journal_part.name} is full")
        self.journal_flash.program(self.journal_part.address + slot * RECORD_SIZE, pack_record(kind, *fields))

    def _erase_journal(self) -> None:
        part = self.journal_part
        for sector in self.journal_flash.sectors_in(part.address, part.size):
            if not self.journal_flash.is_erased(sector.start, sector.size):
                self.journal_flash.erase(sector.start)

    # -- download
    def open(self, session: Session, step: int) -> int:
        """Start or resume the download of ``session``; the offset from which bytes are still needed."""
        if session.total > self.room:
            raise AgentError(AgentCode.TOO_LARGE, f"image of {session.total} bytes does not fit the "
                             f"{self.room} bytes of the staging area")
        state = self.read_journal()
        # a request of this very session that does not stand (its commit torn) keeps its verified bytes:
        # the request's sectors are cleared below and the agent requests again
        if state.session_ident != session.ident or state.step != step or state.done:
            self._erase_journal()
            self._append(Kind.SESSION, session.ident, pack_version(session.version), session.total, step)
            name = session.file.encode()[:MAX_FILE]
            for index in range(0, len(name), 16):
                piece = name[index:index + 16].ljust(16, b"\0")
                self._append(Kind.FILE, index // 16, *struct.unpack("<IIII", piece))
            prefix = 0
        else:
            prefix = self._verified_prefix(state, session.total)
        self._clear_from(prefix, session.total)
        return prefix

    def _verified_prefix(self, state: JournalState, total: int) -> int:
        offset = 0
        while offset < total and offset in state.steps:
            length, crc = state.steps[offset]
            if length <= 0 or zlib.crc32(self.flash.read(self.start + offset, length)) != crc:
                break
            offset += length
        return offset

    def _clear_from(self, prefix: int, total: int) -> None:
        """Make every byte the rest of the download and the request will program erased, keeping the
        ``prefix`` bytes already verified (read back and reprogrammed when their sector must go)."""
        flash = self.flash
        sectors = {s.start: s for address, length in self._regions(total)
                   for s in flash.sectors_in(address, length)}
        for sector in (sectors[k] for k in sorted(sectors)):
            keep_end = min(max(self.start + prefix, sector.start), sector.end)
            controls = [(max(a, sector.start), min(a + n, sector.end)) for a, n in self._controls()
                        if a < sector.end and a + n > sector.start]
            if flash.is_erased(keep_end, sector.end - keep_end) and all(
                    flash.is_erased(a, e - a) for a, e in controls):
                continue
            kept = bytearray(flash.read(sector.start, keep_end - sector.start))
            for a, e in controls:      # a torn request word must read erased again, the data around it kept
                if a < keep_end:
                    end = min(e, keep_end)
                    kept[a - sector.start:end - sector.start] = bytes((flash.erased_value,)) * (end - a)
            flash.erase(sector.start)
            self._program(sector.start, bytes(kept))

    def _program(self, address: int, data: bytes) -> None:
        unit = self.flash.write_unit
        fill = bytes((self.flash.erased_value,))
        if not data or data.count(fill) == len(data):
            return
        data += fill * (-len(data) % unit)
        self.flash.program(address, data)

    def write_step(self, offset: int, data: bytes) -> None:
        self._program(self.start + offset, data)
        self._append(Kind.STEP, offset, len(data), zlib.crc32(data))

    def read_image(self, total: int) -> bytes:
        return self.flash.read(self.start, total)

    # -- checks
    def verify(self, total: int, version: ImageVersion, sha256: str = "") -> None:
        """The staged bytes against the job's SHA-256 (when it gave one), then the format's own checks."""
        image = self.read_image(total)
        if sha256 and hashlib.sha256(image).hexdigest() != sha256.lower():
            raise AgentError(AgentCode.VERIFY,
                             f"SHA-256 of the {total} staged bytes is not the job's {sha256}")
        self._verify(image, version)

    # -- request and after the reset
    def request(self, target: ImageVersion, previous: ImageVersion) -> None:
        total = self.read_journal().total
        self._append(Kind.REQUESTED, pack_version(target), pack_version(previous))
        self._commit(total)

    def abandon(self) -> None:
        """Forget a download whose bytes are bad, so the next attempt starts from zero."""
        self._append(Kind.DONE)

    def mark(self, kind: Kind, *fields: int) -> None:
        self._append(kind, *fields)


class McubootStorage(Storage):
    """The secondary slot of an MCUboot layout (a swap's trailer sectors are cleared with the download)."""

    def __init__(self, board: Board, strategy: McubootStrategy, *, journal: str = "agent") -> None:
        self.strategy = strategy
        self.geo = strategy.secondary
        super().__init__(board, board.flashes[strategy.secondary.device],
                         self.geo.address + strategy.staging_offset,
                         self.geo.trailer_offset - strategy.staging_offset, journal=journal)

    def _regions(self, total: int) -> list[tuple[int, int]]:
        wanted = set(self.geo.sectors_covering(0, self.strategy.staging_offset + total))
        wanted |= set(self.geo.trailer_sectors)
        return [(self.geo.sector_address(index), self.geo.sector) for index in sorted(wanted)]

    def check_format(self, head: bytes) -> None:
        try:
            ImageHeader.unpack(head[:32])
        except FormatError as exc:
            raise AgentError(AgentCode.WRONG_FORMAT, f"not an MCUboot image: {exc}") from None

    def version_in(self, head: bytes) -> ImageVersion | None:
        return ImageHeader.unpack(head[:32]).version

    def _verify(self, image: bytes, version: ImageVersion) -> None:
        """Hash and signature with the bootloader's trusted keys, and the version the job promised."""
        try:
            result = verify_image(image, self.strategy.keys)
        except (FormatError, CapacityError) as exc:
            raise AgentError(AgentCode.VERIFY, str(exc)) from None
        if not result.ok:
            raise AgentError(AgentCode.VERIFY, result.reason)
        if result.version is None or result.version.triple != version.triple:
            raise AgentError(AgentCode.VERIFY, f"image carries version {result.version}, the job "
                             f"offered {version}")

    def _commit(self, total: int) -> None:
        self.strategy.request(self.board)

    def running_version(self) -> ImageVersion | None:
        """The version in the primary slot's header, what the bootloader will run."""
        geo = self.strategy.primary
        try:
            return ImageHeader.unpack(self.board.flashes[geo.device].read(geo.address, 32)).version
        except FormatError:
            return None

    def staged_image_back(self, state: JournalState, target: ImageVersion) -> bool:
        """Whether the secondary slot holds the requested image again with no request standing: what a
        swap leaves after reverting it (a refused image is scrambled, an installed one swapped out)."""
        if state.total <= 0 or state.total > self.room:
            return False
        try:
            result = verify_image(self.read_image(state.total), self.strategy.keys)
        except (FormatError, CapacityError):
            return False
        return result.ok and result.version is not None and result.version.triple == target.triple

    def request_stands(self) -> bool:
        """Whether the secondary trailer holds a complete request (a good magic)."""
        return read_trailer(self.flash, self.geo).magic_good

    def confirm(self) -> None:
        self.strategy.confirm(self.board)

    def describe(self) -> dict[str, object]:
        """Both slots as MCUboot reads them: the image version in each header and each trailer's state."""
        slots: dict[str, object] = {}
        for geo in (self.strategy.primary, self.strategy.secondary):
            flash = self.board.flashes[geo.device]
            try:
                version: str | None = str(ImageHeader.unpack(flash.read(geo.address, 32)).version)
            except FormatError:
                version = None
            raw = flash.read(geo.address + geo.size - geo.trailer.span, geo.trailer.span)
            slots[geo.name] = {"version": version,
                               "trailer": decode_trailer(raw, geo.trailer).to_dict()}
        return slots


def storage_for(board: Board, strategy: object, *, journal: str = "agent") -> Storage:
    """The storage for ``strategy``'s bootloader system on ``board``."""
    from mcuota.agent.seed_storage import GizwitsStorage, Stm32HeaderStorage  # noqa: PLC0415 - cycle
    from mcuota.boot.gizwits import GizwitsStrategy  # noqa: PLC0415
    from mcuota.boot.stm32_header import Stm32HeaderStrategy  # noqa: PLC0415

    if isinstance(strategy, McubootStrategy):
        return McubootStorage(board, strategy, journal=journal)
    if isinstance(strategy, GizwitsStrategy):
        return GizwitsStorage(board, strategy, journal=journal)
    if isinstance(strategy, Stm32HeaderStrategy):
        return Stm32HeaderStorage(board, strategy, journal=journal)
    name = getattr(strategy, "name", type(strategy).__name__)
    raise UsageError(f"the OTA agent cannot stage updates for the {name} bootloader yet (MCUboot, gizwits "
                     "and stm32-header can)")
