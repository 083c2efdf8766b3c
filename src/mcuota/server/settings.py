"""What one running update server is configured with, and the hook other services start through.

:class:`Settings` is plain data: ``mcuota serve`` fills it from the command line and the tests build it
directly, so no module-level app, engine or global configuration exists anywhere.

Services that live as long as the server (the MQTT publisher first) are *service factories*: a callable
that takes the :class:`ServiceContext` and returns an async context manager. The app enters each one
after the database is migrated and the catalog is ready, and leaves them in reverse order at shutdown,
so a service never sees a half-started server and a failure to start one stops the server cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcuota.server.catalog import UpdateCatalog
    from mcuota.server.fleet import Fleet

DEFAULT_MAX_UPLOAD = 16 * 1024 * 1024
DEFAULT_STAGES = (1, 10, 50, 100)


@dataclass(frozen=True)
class ServiceContext:
    """What a long-lived service (e.g. the MQTT publisher) gets when the server starts it."""

    settings: Settings
    catalog: UpdateCatalog
    """The database-backed catalog (the :class:`~mcuota.server.fleet.Fleet`): the one decision every
    delivery path shares."""
    fleet: Fleet
    log: logging.Logger


ServiceFactory = Callable[[ServiceContext], AbstractAsyncContextManager[object]]


@dataclass
class Settings:
    data_dir: Path
    database_url: str | None = None
    """SQLAlchemy URL; None means SQLite (WAL) at ``<data_dir>/mcuota.db``."""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL devices are told to download from (job documents); None: the URL the request came to."""
    require_signatures: bool = True
    """Refuse releases that are not signed by a trusted key (``--allow-unsigned`` turns it off)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    rate_limit: float = 100.0
    """Requests per second per client (credential, else address); 0 disables the limit. The burst lets
    an agent fetch a few MB in 4 KiB Range steps without being slowed down."""
    rate_burst: int = 1000
    manufacturer: str = "mcuota"
    manufacturer_id: str = "MCUOTA"
    mqtt_url: str | None = None
    """Broker the MQTT publisher connects to; None with ``mqtt_enabled``: the embedded broker."""
    mqtt_enabled: bool = True
    mqtt_port: int | None = None
    """Port of the embedded broker (0: any free one; None: 1883, or a free one when 1883 is taken)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    services: list[ServiceFactory] = field(default_factory=list)
    """Started in order once the server is ready, stopped in reverse order at shutdown."""
    admin_key_file_name: str = "admin-api-key"
    workers: int = 1
    """Server processes sharing the listening socket (``mcuota serve --workers N``)."""
    access_log: bool = False
    """One log line per request; off, successful requests are summed into one line per route and status
    every :data:`mcuota.server.logs.ACCESS_SUMMARY_SECONDS` (refusals and failures are always logged)."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mcuota.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / self.admin_key_file_name

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"
