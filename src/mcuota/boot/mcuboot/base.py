"""What the four MCUboot strategies share: images and keys, the application-side calls (stage, confirm),
the checks a secondary image must pass, erasing/scrambling, the copy loop and the final jump."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from mcuota.boot.board import Board
from mcuota.boot.layout import Layout
from mcuota.boot.mcuboot.geometry import (
    Options,
    SlotGeometry,
    logical_sector,
    parse_options,
    slot_geometry,
)
from mcuota.boot.mcuboot.images import (
    SlotImage,
    Validator,
    bootable_problem,
    downgrade_problem,
    locate_image,
    vector_problem,
)
from mcuota.boot.mcuboot.keys import signing_key, trusted_keys
from mcuota.boot.mcuboot.trailers import SlotTrailer, read_trailer, write_image_ok, write_magic
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.errors import CapacityError, FormatError, UsageError
from mcuota.flash import NorFlash
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import MagicState, VerifyResult, build_image, looks_like_mcuboot, parse_image
from mcuota.image.version import ImageVersion


class Run:
    """One run of the bootloader on one board: the flash of each slot, and the log it keeps."""

    __slots__ = ("flashes", "log")

    def __init__(self, board: Board, devices: dict[str, str]) -> None:
        self.flashes: dict[str, NorFlash] = {slot: board.flashes[device] for slot, device in devices.items()}
        self.log: list[str] = []


class McubootStrategy(Strategy):
    """Base of the MCUboot strategies; a subclass sets ``name`` and ``mode`` and implements ``boot``."""

    mode: ClassVar[str] = ""
    uses_scratch: ClassVar[bool] = False

    def __init__(self, layout: Layout, *, keys: Sequence[PublicKey] | None = None) -> None:
        super().__init__(layout)
        primary = layout.partition("primary")
        secondary = layout.partition("secondary")
        parts = [primary, secondary]
        if self.uses_scratch:
            parts.append(layout.partition("scratch"))
        units = [layout.device(p.device).flash_part().write_unit for p in parts]
        self.options: Options = parse_options(
            layout, units, downgrade_default="version" if self.mode == "overwrite" else "off")
        sector = logical_sector(layout, parts)
        overwrite_only = self.mode == "overwrite"
        self.primary: SlotGeometry = slot_geometry(layout, primary, sector, self.options,
                                                   overwrite_only=overwrite_only)
        self.secondary: SlotGeometry = slot_geometry(layout, secondary, sector, self.options,
                                                     overwrite_only=overwrite_only)
        self.scratch: SlotGeometry | None = (
            slot_geometry(layout, parts[2], sector, self.options, overwrite_only=False)
            if self.uses_scratch else None)
        self.sector = sector
        given = tuple(keys) if keys is not None else self.options.keys
        self.keys: tuple[PublicKey, ...] = trusted_keys(self.options.signature, given)
        self.validator = Validator(self.keys)
        self._devices = {g.name: g.device for g in self.slots}

    @property
    def slots(self) -> tuple[SlotGeometry, ...]:
        return (self.primary, self.secondary) + ((self.scratch,) if self.scratch is not None else ())

    def start(self, board: Board) -> Run:
        return Run(board, self._devices)

    # -- images -----------------------------------------------------------------------------------------
    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        """Sign ``payload`` (linked for the primary slot + header) as ``imgtool sign --pad-header`` does,
        with the development key of the layout's type unless a signer is given. With the
        ``security_counter`` option the image carries imgtool's ``--security-counter auto``."""
        key = signing_key(self.options.signature, signer)
        counter: Literal["auto"] | None = "auto" if self.layout.options.get("security_counter") else None
        built = build_image(payload, version=version, header_size=self.options.header_size, key=key,
                            pad_header=True, security_counter=counter)
        return ReleaseImage(built.data, bytes(payload), version)

    def parse_release(self, data: bytes) -> ReleaseImage | None:
        """An MCUboot image (signed by anyone, padded or not); padding and trailer are dropped, since
        :meth:`stage` writes its own request."""
        if not looks_like_mcuboot(data):
            return None
        image = parse_image(data)
        return ReleaseImage(bytes(data[:image.end]), image.payload(data), image.version)

    @staticmethod
    def image_bytes(release: ReleaseImage) -> bytes:
        """The image up to the end of its TLVs: what goes into a slot (a trailer is the bootloader's)."""
        try:
            end = parse_image(release.data).end
        except FormatError:
            return release.data
        return release.data[:end]

    # -- factory ------------------------------------------------------------------------------------------
    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        """The image programmed into the primary slot with no trailer, as a production programmer does
        with an unpadded signed image (nothing to confirm, nothing to revert to)."""
        data = self.image_bytes(release)
        geo = self.primary
        if len(data) > geo.trailer_offset:
            raise CapacityError(f"image of {len(data)} bytes does not fit the primary slot's "
                                f"{geo.trailer_offset} bytes before the trailer")
        flash = board.flashes[geo.device]
        self.erase_sectors(flash, geo, geo.sectors_covering(0, len(data)))
        self.copy_bytes(data, flash, geo.address)

    # -- application side ---------------------------------------------------------------------------------
    @property
    def staging_offset(self) -> int:
        """Where in the secondary slot the application writes an update (swap-offset: one sector in)."""
        return 0

    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        """What the application's update agent does: erase what the download needs in the secondary
        slot, write the image, then request it, image_ok first (``permanent``) and the magic last.

        The magic is the commit: until it is complete the bootloader sees no request (a torn magic
        reads BAD, which no row of the decision table accepts), and image_ok is never half-way when
        the request becomes visible. Anything cut before the magic is simply staged again."""
        data = self.image_bytes(release)
        geo = self.secondary
        start = self.staging_offset
        room = geo.trailer_offset - start
        if len(data) > room:
            raise CapacityError(f"{self.name}: image of {len(data)} bytes does not fit the secondary slot "
                                f"({room} bytes before the trailer)")
        flash = board.flashes[geo.device]
        wanted = set(geo.sectors_covering(0, start + len(data))) | set(geo.trailer_sectors)
        self.erase_sectors(flash, geo, sorted(wanted))
        self.copy_bytes(data, flash, geo.address + start, self.options.stage_chunk)
        self.request(board, permanent=permanent)

    def request(self, board: Board, *, permanent: bool = False) -> None:
        """``boot_set_pending``: ask for the image already in the secondary slot at the next reset, as a
        test (magic only) or permanently (image_ok, then the magic). A request already standing is left
        as it is; a trailer that is neither erased nor a request (a request cut short) cannot take one
        without an erase, so staging has to start over."""
        geo = self.secondary
        flash = board.flashes[geo.device]
        trailer = read_trailer(flash, geo)
        if trailer.magic_good:
            return
        if trailer.state.magic is not MagicState.UNSET or (trailer.image_ok_written and not permanent):
            raise UsageError(f"{self.name}: the secondary trailer holds a request cut short; stage the "
                             "image again")
        if permanent and not trailer.image_ok_written:
            write_image_ok(flash, geo)
        write_magic(flash, geo)

    def confirm(self, board: Board) -> None:
        """``boot_set_confirmed``: write image_ok in the primary trailer when it has a good magic and the
        flag is still erased; otherwise (already confirmed, or nothing to confirm) touch nothing."""
        geo = self.primary
        flash = board.flashes[geo.device]
        trailer = read_trailer(flash, geo)
        if trailer.magic_good and not trailer.image_ok_written:
            write_image_ok(flash, geo)

    def committed(self, board: Board, release: ReleaseImage) -> bool | None:
        """Swap modes: the release is in the primary slot and confirmed (image_ok written); before that a
        reset may legitimately bring the old image back (the revert is the design)."""
        data = self.image_bytes(release)
        geo = self.primary
        flash = board.flashes[geo.device]
        if flash.read(geo.address, len(data)) != data:
            return False
        trailer = read_trailer(flash, geo)
        return trailer.magic_good and trailer.image_ok_written

    # -- checks -------------------------------------------------------------------------------------------
    def primary_image(self, run: Run) -> tuple[SlotImage | None, VerifyResult | None, str | None]:
        """The primary slot's image and its verification, or why there is none."""
        flash = run.flashes["primary"]
        geo = self.primary
        found = locate_image(flash, geo.address, geo.trailer_offset)
        if isinstance(found, str):
            return None, None, found
        result = self.validator.verify(flash, found)
        return found, result, None if result.ok else result.reason

    def secondary_problem(self, run: Run, image: SlotImage) -> tuple[VerifyResult | None, str | None]:
        """Every check bootutil makes before it will install the image: bootable, reset vector in the
        primary slot, hash and signature with the trusted keys."""
        flash = run.flashes["secondary"]
        problem = bootable_problem(image)
        if problem is None and self.options.check_vectors:
            problem = vector_problem(flash, image, self.primary.address, self.primary.end)
        if problem is not None:
            return None, problem
        result = self.validator.verify(flash, image)
        if not result.ok:
            return result, result.reason
        return result, None

    def downgrade(self, new: VerifyResult, installed: VerifyResult | None) -> str | None:
        return downgrade_problem(self.options.downgrade, new, installed)

    # -- flash chores ---------------------------------------------------------------------------------------
    @staticmethod
    def erase_sectors(flash: NorFlash, geo: SlotGeometry, indexes: range | list[int]) -> None:
        """Erase the physical sectors of the given logical sectors that are not already erased."""
        for index in indexes:
            for sector in flash.sectors_in(geo.sector_address(index), geo.sector):
                if not flash.is_erased(sector.start, sector.size):
                    flash.erase(sector.start)

    def copy_bytes(self, data: bytes, flash: NorFlash, address: int, chunk: int = 0) -> None:
        """Program ``data`` at ``address`` (erased) in ``chunk``-byte pieces (default: the copy buffer),
        the last padded to the write unit; a piece that is all erased value changes nothing and is
        skipped."""
        unit = flash.write_unit
        fill = flash.erased_value
        chunk = chunk or self.options.copy_chunk
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            if piece.count(fill) == len(piece):
                continue
            short = -len(piece) % unit
            if short:
                piece += bytes((fill,)) * short
            flash.program(address + offset, piece)

    def copy(self, run: Run, src: str, src_offset: int, dst: str, dst_offset: int, *, length: int) -> None:
        src_geo = self._geo(src)
        dst_geo = self._geo(dst)
        data = run.flashes[src].read(src_geo.address + src_offset, length)
        flash = run.flashes[dst]
        self.copy_bytes(data, flash, dst_geo.address + dst_offset)

    def _geo(self, slot: str) -> SlotGeometry:
        for geo in self.slots:
            if geo.name == slot:
                return geo
        raise KeyError(slot)

    def trailer(self, run: Run, slot: str) -> SlotTrailer:
        return read_trailer(run.flashes[slot], self._geo(slot))

    def scramble_secondary(self, run: Run) -> None:
        """Erase the secondary slot as bootutil's ``boot_scramble_slot`` does, trailer sectors first so
        that a cut part-way leaves no request behind; sectors already erased are skipped."""
        geo = self.secondary
        flash = run.flashes["secondary"]
        self.erase_sectors(flash, geo, geo.trailer_sectors)
        self.erase_sectors(flash, geo, range(geo.first_trailer_sector))

    def round_up(self, size: int) -> int:
        align = self.options.align
        return -(-size // align) * align

    # -- the end of every boot ------------------------------------------------------------------------------
    def jump(self, run: Run) -> BootResult:
        """Hand over to the primary slot's image, verified again unless ``validate_primary`` is off."""
        image, result, problem = self.primary_image(run)
        if image is None:
            return BootResult(BootAction.STAY, reason=f"no bootable image in the primary slot: {problem}",
                              log=run.log)
        problem = problem if self.options.validate_primary else None
        problem = problem or bootable_problem(image)
        if problem is not None:
            return BootResult(BootAction.STAY, reason=f"primary slot image is not valid: {problem}",
                              log=run.log)
        version = image.header.version if result is None or result.version is None else result.version
        run.log.append(f"Jumping to the primary slot image {version} at "
                       f"0x{image.address + image.header.hdr_size:08x}")
        return BootResult(BootAction.JUMP, image.address + image.header.hdr_size, "primary",
                          f"image {version} in the primary slot verified", run.log)
