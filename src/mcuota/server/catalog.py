"""What the delivery paths (our device API, the seed-002 HTTP flow, the seed-002 MQTT publisher) ask
of the update service, as one small interface.

Every delivery path needs the same three things: "what should this device get now?" (version gated:
never a version <= the running one unless an operator made an explicit downgrade rollout), "give me
the bytes of that release", and "record what the device reported". Keeping them behind
:class:`UpdateCatalog` lets the MQTT publisher and the HTTP routes share one decision, lets the
database-backed service implement it once, and lets protocol tests run on :class:`InMemoryCatalog`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Protocol

from mcuota.image.version import ImageVersion

RESULT_STATES = ("downloading", "downloaded", "installing", "rebooting", "success", "failure", "reverted")


@dataclass(frozen=True)
class Offer:
    """A release offered to one device: everything a job document needs."""

    release_id: str
    version: ImageVersion
    board: str
    size: int
    sha256: str
    file_name: str
    image_format: str
    product: str = ""
    manufacturer: str = ""
    manufacturer_id: str = ""
    md5: str = ""
    """Hex MD5 of the image: a Gizwits MCU checks it and writes it into its FLAG record."""


@dataclass(frozen=True)
class DeviceReport:
    serial: str
    release_id: str | None
    state: str
    reason: str = ""


class UpdateCatalog(Protocol):
    def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
        """The release ``serial`` should install now, or None; never one <= ``running_version``
        unless an operator created an explicit downgrade rollout for it."""
        ...

    def artifact(self, release_id: str) -> bytes:
        """The release's image bytes (raises KeyError for an unknown release)."""
        ...

    def record_report(self, report: DeviceReport) -> None:
        """Store a progress or result report; idempotent when repeated."""
        ...


@dataclass
class InMemoryCatalog:
    """A catalog held in memory: the latest release per board, gated by version. For tests and for
    protocol adapters exercised without a database."""

    manufacturer: str = "mcuota"
    manufacturer_id: str = "MCUOTA"
    product: str = "sample-app"
    _releases: dict[str, tuple[Offer, bytes]] = field(default_factory=dict)
    reports: list[DeviceReport] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_release(self, board: str, version: ImageVersion, data: bytes, *, image_format: str = "mcuboot",
                    file_name: str | None = None) -> Offer:
        digest = hashlib.sha256(data).hexdigest()
        offer = Offer(release_id=digest[:16], version=version, board=board, size=len(data), sha256=digest,
                      file_name=file_name or f"{board}-{version}.bin", image_format=image_format,
                      product=self.product, manufacturer=self.manufacturer,
                      manufacturer_id=self.manufacturer_id,
                      md5=hashlib.md5(data, usedforsecurity=False).hexdigest())
        with self._lock:
            self._releases[offer.release_id] = (offer, data)
        return offer

    def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
        with self._lock:
            candidates = [o for o, _ in self._releases.values()
                          if o.board == board and o.version > running_version]
        return max(candidates, key=lambda o: o.version.triple, default=None)

    def artifact(self, release_id: str) -> bytes:
        with self._lock:
            return self._releases[release_id][1]

    def record_report(self, report: DeviceReport) -> None:
        with self._lock:
            if report not in self.reports:
                self.reports.append(report)
