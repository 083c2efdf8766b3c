"""Seed 004, the Interrupt "Device Firmware Update Cookbook": bootloader -> loader -> application.

Three programs share the flash and a few words of no-init RAM:

* the **bootloader** (0x08000000) starts the first of slot 1 (the loader) and slot 2 (application or
  updater) whose header has the magic and whose CRC holds;
* the **loader** (slot 1) keeps ``{magic 0x0BADCAFE, flags, boot_counter}`` in shared RAM, set up
  again whenever the magic is wrong (always after a power cut). It enters DFU mode when the application
  asked for it (flag bit 0), when the boot counter reached 3 (the application kept resetting before it
  marked itself stable), or when slot 2 holds nothing valid; otherwise it counts the boot and starts
  slot 2. In DFU mode it writes the image a host sends into slot 2;
* the **application** sets the DFU flag and resets to be updated ("dfu-mode") and clears the boot
  counter once it is happy ("mark-stable", :meth:`InterruptStrategy.confirm`);
* the **updater** is an application image whose only job is to rewrite the loader: it is installed in
  slot 2 like an application, receives a loader image, writes it to slot 1, then sets the DFU flag so
  the new loader takes the application back into slot 2.

Every write follows the cookbook's commit rule: invalidate the target by programming zeros over its
header, erase, write everything after the header, check the CRC, and program the header last. So at
any power cut at least one of the chain's images is valid: cut while the loader rewrites slot 2 → slot 2
is invalid → the loader comes up in DFU mode and the host sends the image again; cut while the updater
rewrites slot 1 → slot 1 is invalid → the bootloader starts slot 2 (the updater) directly, which writes
the loader again. DFU mode (STAY, recoverable) is never a brick: the device can still take an image.

The host on the other end of DFU is ``board.state.host`` (channel ``loader`` for slot 2 images,
``updater`` for loader images): it keeps offering its image until the device reports success or
refuses it, so a cut mid-download is followed by a new download, as a host tool that waits for the
device does. Before anything is erased the loader checks the header (magic, type for the slot, size,
vector table linked for the slot) and, an mcuota addition, refuses an application older than the one
installed (``allow_downgrade`` option). The CRC can only be known once the data is written, so a
tampered image costs the old application: slot 2 is left invalid and the loader waits in DFU mode.

The sweep drives the update as the cookbook does: :meth:`stage` is "dfu-mode" (flag + reset) with the
host offering the image; no flash operation happens on the application side.

The shared flash part is the STM32F429 with the one overwrite the cookbook relies on (an all-zero
program over a header) allowed: the preset part refuses every overwrite to catch mistakes, while the
silicon, whose programming only clears bits, permits this one.
"""

from __future__ import annotations

from mcuota.boot.board import Board
from mcuota.boot.layout import Layout, Partition
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.errors import FormatError, UsageError
from mcuota.image.checksums import crc32
from mcuota.image.interrupt import (
    HEADER_SIZE,
    ImageType,
    InterruptHeader,
    build_interrupt_image,
    parse_interrupt_header,
    parse_interrupt_image,
)
from mcuota.image.version import ImageVersion

SHARED_MAGIC = 0x0BADCAFE
FLAG_DFU = 0x1
CHANNEL_LOADER = "loader"     # images the loader's DFU mode writes into slot 2
CHANNEL_UPDATER = "updater"   # loader images the updater writes into slot 1
_CHUNK = 2048                 # one DFU transfer
_MAX_RESETS = 8               # resets inside one boot() before it is called a reset loop
_SLOT2_TYPES = frozenset({ImageType.APP, ImageType.UPDATER})
_SLOT1_TYPES = frozenset({ImageType.LOADER})


def placeholder_program(role: str, version: ImageVersion, vector_addr: int) -> bytes:
    """A stand-in binary for the loader or updater, whose logic this module simulates: a vector table
    that passes a static check (SP in SRAM, Thumb reset handler just after it) and a text naming it."""
    sp = 0x20030000
    reset = vector_addr + 0x41
    text = f"mcuota simulated interrupt {role} v{version}\n".encode("ascii")
    return sp.to_bytes(4, "little") + reset.to_bytes(4, "little") + text.ljust(248, b"\0")


class InterruptStrategy(Strategy):
    name = "interrupt"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self._slot1 = layout.partition("slot1")
        self._slot2 = layout.partition("slot2")
        self._region = int(layout.options.get("header_region", 0x80))
        self._max_boots = int(layout.options.get("max_boot_count", 3))
        self._allow_downgrade = bool(layout.options.get("allow_downgrade", False))

    # -- images ---------------------------------------------------------------------------------------
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        return self._image(payload, version, ImageType.APP)

    def make_loader(self, version: ImageVersion) -> ReleaseImage:
        """A loader image for slot 1 (its program is simulated by this strategy)."""
        payload = placeholder_program("loader", version, self._slot1.address + self._region)
        return self._image(payload, version, ImageType.LOADER)

    def make_updater(self, version: ImageVersion) -> ReleaseImage:
        """An updater image for slot 2 (its program is simulated by this strategy)."""
        payload = placeholder_program("updater", version, self._slot2.address + self._region)
        return self._image(payload, version, ImageType.UPDATER)

    def _image(self, payload: bytes, version: ImageVersion, image_type: ImageType) -> ReleaseImage:
        slot = self._slot1 if image_type == ImageType.LOADER else self._slot2
        data = build_interrupt_image(payload, version, slot=slot.address, header_region=self._region,
                                     image_type=image_type, max_size=slot.size)
        return ReleaseImage(data, bytes(payload), version)

    def parse_release(self, data: bytes) -> ReleaseImage | None:
        try:
            image = parse_interrupt_image(data)
        except FormatError:
            return None
        return ReleaseImage(bytes(data), bytes(data[self._region:]), image.header.version)

    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        loader = self.make_loader(ImageVersion(1, 0, 0))
        for slot, data in ((self._slot1, loader.data), (self._slot2, release.data)):
            flash = board.flashes[slot.device]
            flash.erase_range(slot.address, len(data))
            flash.program(slot.address, data)

    # -- application side -----------------------------------------------------------------------------
    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """An application or updater image: the host offers it to the loader, and the running
        application sets the DFU flag and resets ("dfu-mode"). A loader image: the running updater
        receives it and rewrites slot 1 (then asks the new loader for DFU mode)."""
        try:
            image_type = parse_interrupt_header(release.data).image_type
        except FormatError:
            image_type = ImageType.APP  # the loader will say what is wrong with it
        if image_type == ImageType.LOADER:
            running = self._valid(board, self._slot2, frozenset({ImageType.UPDATER}))
            if running is None:
                raise UsageError("interrupt: a loader image is written by the updater: install an updater "
                                 "image in slot 2 first")
            board.state.host[CHANNEL_UPDATER] = release.data
            self._updater(board, running, [])
            return
        board.state.host[CHANNEL_LOADER] = release.data
        self._shared(board)["shared_flags"] |= FLAG_DFU

    def confirm(self, board: Board) -> None:
        """"mark-stable": the application clears the loader's boot counter (RAM only)."""
        self._shared(board)["boot_counter"] = 0

    def offer(self, board: Board, release: ReleaseImage) -> None:
        """Queue ``release`` on the host side without asking the device for anything (a host waiting
        for the device to come up in DFU mode)."""
        header = parse_interrupt_header(release.data)
        channel = CHANNEL_UPDATER if header.image_type == ImageType.LOADER else CHANNEL_LOADER
        board.state.host[channel] = release.data

    # -- the boot chain -------------------------------------------------------------------------------
    def boot(self, board: Board) -> BootResult:
        log: list[str] = []
        for _ in range(_MAX_RESETS):
            shared = self._shared(board)
            loader = self._valid(board, self._slot1, _SLOT1_TYPES)
            if loader is None:
                slot2 = self._valid(board, self._slot2, _SLOT2_TYPES)
                if slot2 is None:
                    return BootResult(BootAction.STAY, log=log,
                                      reason="bootloader: no valid image in slot 1 or slot 2")
                log.append("bootloader: slot 1 holds no valid loader; starting slot 2 directly")
                outcome = self._start_slot2(board, slot2, log)
            elif shared["shared_flags"] & FLAG_DFU:
                shared["shared_flags"] &= ~FLAG_DFU
                outcome = self._dfu(board, log, "the application requested DFU mode")
            elif shared["boot_counter"] >= self._max_boots:
                shared["boot_counter"] = 0
                outcome = self._dfu(board, log, f"boot counter reached {self._max_boots}: the application "
                                    "never marked itself stable")
            else:
                slot2 = self._valid(board, self._slot2, _SLOT2_TYPES)
                if slot2 is None:
                    outcome = self._dfu(board, log, "slot 2 holds no valid image")
                else:
                    shared["boot_counter"] += 1
                    outcome = self._start_slot2(board, slot2, log)
            if outcome is not None:
                return outcome
        return BootResult(BootAction.STAY, log=log,
                          reason=f"reset loop: {_MAX_RESETS} resets without starting anything")

    def _start_slot2(self, board: Board, header: InterruptHeader, log: list[str]) -> BootResult | None:
        if header.image_type == ImageType.UPDATER:
            return self._updater(board, header, log)
        return BootResult(BootAction.JUMP, header.vector_addr, "slot2",
                          f"application {header.version} in slot 2", log)

    def _dfu(self, board: Board, log: list[str], why: str) -> BootResult | None:
        """The loader's DFU mode: write what the host offers into slot 2, or wait (None = reset)."""
        log.append(f"loader: DFU mode ({why})")
        data = board.state.host.get(CHANNEL_LOADER)
        if data is None:
            return BootResult(BootAction.STAY, reason="loader in DFU mode, waiting for an image",
                              log=log, recoverable=True)
        if self._write_slot(board, self._slot2, data, log):
            log.append("loader: slot 2 written and committed; reset")
        return None

    def _updater(self, board: Board, header: InterruptHeader, log: list[str]) -> BootResult | None:
        """The updater in slot 2: rewrite slot 1 with the offered loader, then ask it for DFU mode."""
        running = BootResult(BootAction.JUMP, header.vector_addr, "slot2",
                             f"updater {header.version} running, waiting for a loader image", log)
        data = board.state.host.get(CHANNEL_UPDATER)
        if data is None:
            return running
        if not self._write_slot(board, self._slot1, data, log):
            return None if self._valid(board, self._slot1, _SLOT1_TYPES) is None else running
        self._shared(board)["shared_flags"] |= FLAG_DFU
        log.append("updater: slot 1 written and committed; DFU flag set for the new loader; reset")
        return None

    def _write_slot(self, board: Board, slot: Partition, data: bytes, log: list[str]) -> bool:
        """Check, invalidate, erase, write the body, check the CRC, program the header last. The host's
        offer is withdrawn on success and on refusal (the host is told), kept when power is lost."""
        if slot is self._slot2:
            who, channel, types = "loader", CHANNEL_LOADER, _SLOT2_TYPES
        else:
            who, channel, types = "updater", CHANNEL_UPDATER, _SLOT1_TYPES
        problem, header = self._check_download(board, slot, data, types)
        if problem is not None or header is None:
            del board.state.host[channel]
            log.append(f"{who}: refused the image: {problem}")
            return False
        flash = board.flashes[slot.device]
        flash.program(slot.address, bytes(HEADER_SIZE))  # invalidate whatever the slot held
        flash.erase_range(slot.address, HEADER_SIZE + header.data_size)
        body = memoryview(data)[HEADER_SIZE:]
        for offset in range(0, len(body), _CHUNK):
            flash.program(slot.address + HEADER_SIZE + offset, body[offset:offset + _CHUNK])
        actual = crc32(flash.view(slot.address + HEADER_SIZE, header.data_size))
        if actual != header.crc:
            del board.state.host[channel]
            log.append(f"{who}: CRC 0x{actual:08x} of the written image does not match its header "
                       f"(0x{header.crc:08x}); header not written, the slot stays invalid")
            return False
        flash.program(slot.address, data[:HEADER_SIZE])
        del board.state.host[channel]
        return True

    def _check_download(self, board: Board, slot: Partition, data: bytes,
                        types: frozenset[ImageType]) -> tuple[str | None, InterruptHeader | None]:
        try:
            header = parse_interrupt_header(data)
        except FormatError as exc:
            return str(exc), None
        if header.image_type not in types:
            kinds = ", ".join(sorted(t.name.lower() for t in types))
            got = ImageType(header.image_type).name.lower()
            return f"image type {got} does not belong in {slot.name} ({kinds})", None
        if HEADER_SIZE + header.data_size > slot.size or len(data) != HEADER_SIZE + header.data_size:
            return (f"image of {HEADER_SIZE + header.data_size} bytes ({len(data)} sent) does not fit "
                    f"{slot.name} ({slot.size} bytes)"), None
        if header.vector_addr != slot.address + self._region:
            return (f"vector table at 0x{header.vector_addr:08x}: linked for another slot "
                    f"(expected 0x{slot.address + self._region:08x})"), None
        if slot is self._slot2 and header.image_type == ImageType.APP and not self._allow_downgrade:
            installed = self._valid(board, slot, frozenset({ImageType.APP}))
            if installed is not None and header.version < installed.version:
                return f"downgrade from {installed.version} to {header.version} is not allowed", None
        return None, header

    # -- shared state ---------------------------------------------------------------------------------
    def _shared(self, board: Board) -> dict[str, int]:
        """The shared RAM block, set up again when its magic is wrong (after every power cut)."""
        noinit = board.state.noinit
        if noinit.get("shared_magic") != SHARED_MAGIC:
            noinit.update(shared_magic=SHARED_MAGIC, shared_flags=0, boot_counter=0)
        return noinit

    def _valid(self, board: Board, slot: Partition, types: frozenset[ImageType]) -> InterruptHeader | None:
        """The slot's header if it has the magic, a type for this slot, fits, and its CRC holds."""
        flash = board.flashes[slot.device]
        try:
            header = parse_interrupt_header(flash.read(slot.address, HEADER_SIZE))
        except FormatError:
            return None
        if header.image_type not in types or HEADER_SIZE + header.data_size > slot.size:
            return None
        if crc32(flash.view(slot.address + HEADER_SIZE, header.data_size)) != header.crc:
            return None
        return header
