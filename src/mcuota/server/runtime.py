"""Opening and closing what a running server holds: database (migrated), blob store, fleet, metrics.

Kept apart from the app so ``mcuota serve`` can open it *before* it starts listening (a wrong database
URL is then one clear line and exit 2, not a traceback from inside the ASGI lifespan), while tests
that build the app directly get the same start-up through the lifespan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from mcuota.errors import UsageError
from mcuota.fsutil import atomic_write
from mcuota.server.blobs import FileBlobStore
from mcuota.server.db import Database
from mcuota.server.downloads import OpenBlobs
from mcuota.server.fleet import Fleet
from mcuota.server.metrics import Metrics
from mcuota.server.schema import devices, releases, rollouts
from mcuota.server.settings import Settings

log = logging.getLogger("mcuota.server")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: FileBlobStore
    fleet: Fleet
    metrics: Metrics
    revision: str
    admin_key_created: bool
    open_blobs: OpenBlobs

    @classmethod
    def open(cls, settings: Settings, *, start_up: bool = True) -> Runtime:
        """The runtime of one server process. ``start_up=False`` is for the workers of ``mcuota serve
        --workers N``: the parent already migrated the database, swept the blobs and created the first
        admin key, once, before forking; a worker only connects."""
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create data directory {settings.data_dir}: {exc.strerror}") from None
        db = Database(settings.resolved_database_url)
        try:
            revision = db.migrate() if start_up else db.revision()
        except SQLAlchemyError as exc:
            db.dispose()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise UsageError(f"cannot open database {db.safe_url}: {reason}") from None
        blobs = FileBlobStore(settings.blob_dir)
        fleet = Fleet(db, blobs, require_signatures=settings.require_signatures,
                      manufacturer=settings.manufacturer, manufacturer_id=settings.manufacturer_id)
        secret = None
        if start_up:
            swept = fleet.sweep_blobs()
            if swept:
                log.warning("removed orphan blobs left by an interrupted upload", extra={"count": len(swept)})
            secret = fleet.ensure_admin_key()
        if secret is not None:
            atomic_write(settings.admin_key_path, secret + "\n", mode=0o600)
            log.warning(f"created the first admin API key and stored it in {settings.admin_key_path} "
                        "(mode 0600)",
                        extra={"event": "admin_key_created", "path": str(settings.admin_key_path)})
        metrics = Metrics()
        metrics.watch_fleet(lambda: _fleet_sizes(db))
        if start_up:
            log.info("database ready", extra={"database": db.safe_url, "revision": revision})
        return cls(settings, db, blobs, fleet, metrics, revision, secret is not None, OpenBlobs(blobs))

    def close(self) -> None:
        self.db.dispose()


def _fleet_sizes(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {
            "devices": conn.execute(select(func.count()).select_from(devices)).scalar_one(),
            "releases": conn.execute(select(func.count()).select_from(releases)).scalar_one(),
            "active_rollouts": conn.execute(select(func.count()).select_from(rollouts)
                                            .where(rollouts.c.state == "active")).scalar_one(),
        }
