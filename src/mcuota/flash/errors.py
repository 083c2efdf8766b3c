"""What can go wrong on a flash part, split by who has to act on it.

:class:`FlashError` and its subclasses are bugs in the code driving the flash (a bootloader writing
where it must not); they are :class:`~mcuota.errors.McuotaError` so a user sees one line naming the
address. :class:`PowerLoss` is different in kind: it is the *simulator* pulling the plug, not an error
of the firmware, so it derives from :class:`BaseException` like ``KeyboardInterrupt``. Firmware cannot
catch a power cut, and a bootloader's ``except Exception`` or ``except McuotaError`` must not be able
to swallow one either: it has to travel up to the simulator that planned it.
"""

from __future__ import annotations

from mcuota.errors import McuotaError


class FlashError(McuotaError):
    """Flash driven in a way the part refuses; the message names the device and the address."""


class FlashAddressError(FlashError):
    """An address or range outside the device, or an erase that does not start on a sector."""


class FlashAlignmentError(FlashError):
    """A program call whose address or length is not a multiple of the part's write unit."""


class FlashProgramError(FlashError):
    """Programming over data that is not erased where the part does not allow it (STM32 PGERR)."""


class FlashWearError(FlashError):
    """An erase past the sector's rated endurance, on a device told to enforce it."""


class PowerLoss(BaseException):
    """The power domain lost power before (``cut``) or during (``torn``) flash operation ``op``.

    ``seq`` is the domain's absolute operation number, ``op`` the number counted from when the fault plan
    was armed (the one the plan named); ``device``/``kind``/``address``/``length`` say which operation
    was hit, so a failing sweep iteration can be replayed and explained.
    """

    def __init__(self, *, fault: str, seq: int, op: int, device: str, kind: str, address: int,
                 length: int) -> None:
        self.fault = fault
        self.seq = seq
        self.op = op
        self.device = device
        self.kind = kind
        self.address = address
        self.length = length
        when = "during" if fault == "torn" else "before"
        super().__init__(f"power lost {when} flash op {op} (seq {seq}): {kind} {length} bytes at "
                         f"0x{address:08X} on {device}")


class PowerOff(PowerLoss):
    """An operation attempted while the domain is still unpowered after a loss.

    Real firmware cannot run without power, so reaching this means the code under test kept going after
    a :class:`PowerLoss` (it caught it) or the simulator forgot ``PowerDomain.power_on()``.
    """

    def __init__(self, *, seq: int, device: str, kind: str, address: int, length: int) -> None:
        super().__init__(fault="off", seq=seq, op=0, device=device, kind=kind, address=address,
                         length=length)
        self.args = (f"flash {kind} at 0x{address:08X} on {device} while power is off "
                     f"(power was lost at seq {seq}; call power_on() first)",)
