"""The fleet simulator's fault plan: what goes wrong, how often, and for which device, reproducibly.

A plan is a handful of rates written as one short spec (``"power-download=0.1,drop=0.05,stall-s=2"``
or a preset such as ``demo``) so that a simulation run can be named, logged and replayed from the
command line. The rates become a concrete schedule only per device: :meth:`FaultPlan.for_device`
draws everything from ``random.Random(f"…/{seed}/{serial}")``, and each request's network fault from
its own ``…/{seed}/{serial}/{n}`` stream. So a device's faults depend on nothing but the run seed, its
serial and its own request numbers — never on how many other devices run, nor on which thread got
scheduled first — and a failure seen in a fleet of 10,000 replays alone.

Device rates (each device draws once):

``power-download``
    a power cut at a random flash operation while the agent writes the download;
``power-install``
    a power cut at a random flash operation while the bootloader installs;
``torn``
    the share of those cuts that tear the operation in progress instead of cutting before it
    (see :class:`mcuota.flash.FaultPlan`);
``crash``
    the new image crashes before it confirms itself: the bootloader must revert.

Request rates (each device request draws once, at most one fault): ``drop`` (the link dies before the
answer), ``corrupt`` (one body byte changes), ``stall`` (the answer waits ``stall-s`` seconds) and
``truncate`` (the link dies half-way through the body). On a raw TCP stream (MQTT) ``drop`` is drawn
per connection instead and cuts it after a random number of bytes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from enum import StrEnum

from mcuota.errors import UsageError
from mcuota.flash import FaultPlan as FlashFaultPlan

DEFAULT_OPS_WINDOW = 64
"""Flash operations a cut is placed among when the caller does not know the phase's real count."""

MAX_STALL_S = 600.0


class NetFaultKind(StrEnum):
    DROP = "drop"
    CORRUPT = "corrupt"
    STALL = "stall"
    TRUNCATE = "truncate"


class Phase(StrEnum):
    DOWNLOAD = "download"
    INSTALL = "install"


@dataclass(frozen=True, slots=True)
class NetFault:
    """One request's fault, with the seeded details a proxy needs to apply it identically on replay."""

    kind: NetFaultKind
    stall_s: float = 0.0
    position: float = 0.0
    """Where in the body a CORRUPT lands, as a share of the body length (0 <= position < 1)."""
    mask: int = 0xFF
    """The non-zero XOR a CORRUPT applies to its byte, so the byte always changes."""

    def corrupt_offset(self, length: int) -> int:
        return min(int(self.position * length), max(length - 1, 0))


@dataclass(frozen=True, slots=True)
class DeviceFaults:
    """One device's frozen schedule. Cut positions count flash operations from 1 within their phase,
    like :class:`mcuota.flash.FaultPlan`; requests and connections are numbered from 1 per device."""

    seed: int
    serial: str
    cut_download_at: int | None
    cut_install_at: int | None
    torn: bool
    crash: bool
    drop: float = 0.0
    corrupt: float = 0.0
    stall: float = 0.0
    truncate: float = 0.0
    stall_s: float = 0.0

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(("mcuota-sim", str(self.seed), self.serial, *map(str, parts))))

    def network(self, request_index: int) -> NetFault | None:
        """The fault for this device's ``request_index``-th request (from 1), or ``None``.

        Drawn from its own stream, so asking out of order or twice gives the same answer."""
        if request_index < 1:
            raise UsageError(f"request index {request_index}: requests are numbered from 1")
        rng = self._rng("net", request_index)
        draw = rng.random()
        threshold = 0.0
        for kind, rate in ((NetFaultKind.DROP, self.drop), (NetFaultKind.CORRUPT, self.corrupt),
                           (NetFaultKind.STALL, self.stall), (NetFaultKind.TRUNCATE, self.truncate)):
            threshold += rate
            if draw < threshold:
                return NetFault(kind, self.stall_s if kind is NetFaultKind.STALL else 0.0,
                                rng.random(), rng.randrange(1, 256))
        return None

    def stream_cut(self, connection_index: int, within: int) -> int | None:
        """For a raw stream: after how many bytes towards the device its ``connection_index``-th
        connection dies (1..``within``), or ``None`` when it lives."""
        if connection_index < 1 or within < 1:
            raise UsageError(f"stream cut for connection {connection_index} within {within} bytes: "
                             "both are counted from 1")
        rng = self._rng("tcp", connection_index)
        if rng.random() >= self.drop:
            return None
        return rng.randint(1, within)

    def power_plan(self, phase: Phase | str) -> FlashFaultPlan:
        """The flash fault plan to arm on the device's power domain when ``phase`` starts (empty when
        this device keeps its power in that phase)."""
        phase = Phase(phase)
        at = self.cut_download_at if phase is Phase.DOWNLOAD else self.cut_install_at
        if at is None:
            return FlashFaultPlan()
        torn_seed = self._rng("torn", phase.value).getrandbits(32)
        return FlashFaultPlan.torn_at(at, seed=torn_seed) if self.torn else FlashFaultPlan.cut_before(at)


_SPEC_NAMES = {
    "power_download": "power-download",
    "power_install": "power-install",
    "torn": "torn",
    "crash": "crash",
    "drop": "drop",
    "corrupt": "corrupt",
    "stall": "stall",
    "stall_s": "stall-s",
    "truncate": "truncate",
}
_FIELDS_BY_NAME = {name: attr for attr, name in _SPEC_NAMES.items()}
_REQUEST_RATES = ("drop", "corrupt", "stall", "truncate")


@dataclass(frozen=True)
class FaultPlan:
    """Fault rates for a whole fleet; immutable so one plan can be shared by every device thread."""

    power_download: float = 0.0
    power_install: float = 0.0
    torn: float = 0.5
    crash: float = 0.0
    drop: float = 0.0
    corrupt: float = 0.0
    stall: float = 0.0
    stall_s: float = 2.0
    truncate: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            name = _SPEC_NAMES[field.name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UsageError(f"fault {name} = {value!r}: not a finite number")
            if field.name == "stall_s":
                if not 0 <= value <= MAX_STALL_S:
                    raise UsageError(f"fault stall-s = {value:g}: outside 0..{MAX_STALL_S:g} seconds")
            elif not 0 <= value <= 1:
                raise UsageError(f"fault {name} = {value:g}: a probability must lie within 0..1")
            object.__setattr__(self, field.name, float(value))
        total = sum(getattr(self, attr) for attr in _REQUEST_RATES)
        if total > 1 + 1e-9:
            raise UsageError(f"faults drop + corrupt + stall + truncate = {total:g}: one request gets at "
                             "most one fault, so their sum must not exceed 1")

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Read ``"preset"``, ``"name=value,…"`` or ``"preset,name=value,…"`` (later items override)."""
        items = [item.strip() for item in spec.split(",")]
        if items == [""]:
            raise UsageError(f"empty fault spec: give a preset ({', '.join(PRESETS)}) or name=value items")
        values: dict[str, float] = {}
        given: set[str] = set()
        for position, item in enumerate(items):
            if not item:
                raise UsageError(f"fault spec {spec!r} has an empty item")
            if "=" not in item:
                if item not in PRESETS:
                    raise UsageError(f"unknown fault preset or item without a value: {item!r} "
                                     f"(presets: {', '.join(PRESETS)})")
                if position:
                    raise UsageError(f"fault preset {item!r} must come first in the spec")
                values = _as_values(PRESETS[item])
                continue
            name, _, text = (part.strip() for part in item.partition("="))
            if name not in _FIELDS_BY_NAME:
                raise UsageError(f"unknown fault {name!r} in {item!r} (known: {', '.join(_FIELDS_BY_NAME)})")
            if name in given:
                raise UsageError(f"fault {name!r} given twice")
            given.add(name)
            try:
                value = float(text)
            except ValueError:
                raise UsageError(f"fault {item!r}: {text!r} is not a number") from None
            values[_FIELDS_BY_NAME[name]] = value
        return cls(**values)

    def __str__(self) -> str:
        default = FaultPlan()
        items = [f"{_SPEC_NAMES[f.name]}={_number(getattr(self, f.name))}" for f in fields(self)
                 if getattr(self, f.name) != getattr(default, f.name)]
        return ",".join(items) if items else "none"

    @property
    def is_survivable(self) -> bool:
        """True when a correct system comes through every fault in the plan with a working device."""
        return self.crash == 0

    def for_device(self, seed: int, serial: str, *, download_ops: int = DEFAULT_OPS_WINDOW,
                   install_ops: int = DEFAULT_OPS_WINDOW) -> DeviceFaults:
        """The device's schedule. ``download_ops`` / ``install_ops`` are the flash operations of each
        phase when known (from a counted clean run); a cut lands uniformly on one of them."""
        if download_ops < 1 or install_ops < 1:
            raise UsageError(f"phases of {download_ops} and {install_ops} flash operations: "
                             "a cut needs at least one")
        rng = random.Random(f"mcuota-sim/{seed}/{serial}")
        # Every draw happens whatever the outcome, so changing one rate never reshuffles the others.
        cut_download, download_op = rng.random() < self.power_download, rng.randint(1, download_ops)
        cut_install, install_op = rng.random() < self.power_install, rng.randint(1, install_ops)
        torn = rng.random() < self.torn
        crash = rng.random() < self.crash
        return DeviceFaults(
            seed=seed, serial=serial,
            cut_download_at=download_op if cut_download else None,
            cut_install_at=install_op if cut_install else None,
            torn=torn and (cut_download or cut_install), crash=crash,
            drop=self.drop, corrupt=self.corrupt, stall=self.stall, truncate=self.truncate,
            stall_s=self.stall_s)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _as_values(plan: FaultPlan) -> dict[str, float]:
    return {f.name: getattr(plan, f.name) for f in fields(plan)}


PRESETS: dict[str, FaultPlan] = {
    "none": FaultPlan(),
    "light": FaultPlan(power_download=0.02, power_install=0.01, crash=0.01, drop=0.01, corrupt=0.005,
                       stall=0.005, stall_s=1, truncate=0.01),
    "default": FaultPlan(power_download=0.1, power_install=0.05, crash=0.02, drop=0.05, corrupt=0.02,
                         stall=0.02, stall_s=2, truncate=0.02),
    "heavy": FaultPlan(power_download=0.3, power_install=0.2, crash=0.1, drop=0.15, corrupt=0.05,
                       stall=0.05, stall_s=3, truncate=0.1),
    # What the demo shows must end with every device running the new release: no crashing images.
    "demo": FaultPlan(power_download=0.1, power_install=0.05, drop=0.05, corrupt=0.02, stall=0.02,
                      stall_s=1, truncate=0.03),
}
