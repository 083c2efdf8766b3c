"""The update service's state and decisions over the database: products and boards, trust, releases,
devices, staged rollouts, update attempts with their history, API keys and the audit log.

:class:`Fleet` is also the database-backed :class:`~mcuota.server.catalog.UpdateCatalog` that every
delivery path shares (our device API, the seed-002 HTTP flow, the MQTT publisher): ``offer_for``,
``artifact`` and ``record_report`` go through the same gating, admission and report rules as the HTTP
routes, so a device gets the same answer whichever way it asks.

Rules kept here, in one place:

* Releases are offered only through rollouts, and never a version <= the one a device runs unless the
  rollout was created as an explicit downgrade (then any version other than the running one).
* A device's report moves its attempt forward only: repeating a report, or a late "downloading" after
  "success", changes nothing and is acknowledged; a contradicting final report (failure after success)
  is a :class:`~mcuota.server.errors.Conflict`. "reverted" may follow success (the bootloader undid it).
* A device whose latest attempt of a rollout ended in "failure" (the download or install went wrong, the
  image may still be good) is offered the release again, in a new attempt, until it has used the
  rollout's ``max_attempts``; "reverted" is never retried (the image itself failed on that device).
  Rollout counts and the halt rule are per device, by its latest attempt.
* Every report, admission and rollout decision commits in one transaction before it is acknowledged,
  so a crash of the server loses nothing a device or operator was told had happened.
* A release's blob and row appear together: the blob is written (temp, fsync, rename) before the row is
  inserted, and removed again when the insert fails; :meth:`Fleet.sweep_blobs` removes any orphan at
  start-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, tuple_, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ColumnElement

from mcuota.errors import KeyFileError
from mcuota.image.gizwits import soft_ver_from_version
from mcuota.image.keys import PublicKey, load_public_key
from mcuota.image.version import ImageVersion
from mcuota.server import credentials, rollout_policy
from mcuota.server.blobs import BlobStore
from mcuota.server.catalog import RESULT_STATES, DeviceReport, Offer
from mcuota.server.db import Database
from mcuota.server.errors import BadRequest, Conflict, Forbidden, NotFound, Rejected, Unauthorized
from mcuota.server.names import check_file_name, check_name, check_tag
from mcuota.server.release_check import CheckedImage, check_image
from mcuota.server.schema import (
    api_keys,
    attempt_events,
    attempts,
    audit_log,
    boards,
    device_tags,
    devices,
    products,
    releases,
    rollouts,
    signing_keys,
)
from mcuota.server.ttlcache import TtlCache

log = logging.getLogger("mcuota.server.fleet")

ATTEMPT_STATES = ("offered", *RESULT_STATES, "cancelled")
TERMINAL = frozenset({"success", "failure", "reverted", "cancelled"})
FAILED = frozenset({"failure", "reverted"})
_RANK = {"offered": 0, "downloading": 1, "downloaded": 2, "installing": 3, "rebooting": 4,
         "success": 5, "failure": 5, "reverted": 6, "cancelled": 0}
REPORTABLE = RESULT_STATES


class _NeedsWrite(Exception):
    """A check-in answered in a read transaction found it has something to write."""


MAX_ATTEMPTS_LIMIT = 10
"""Most attempts a rollout may give one device: beyond a few, a device that keeps failing needs a person."""

LAST_SEEN_RESOLUTION = 30.0
"""Seconds: a check-in sooner than this after the recorded one leaves ``last_seen_at`` alone, so a
device polling (or a fleet re-asking for its job) commits nothing and syncs nothing to disk."""


@dataclass(frozen=True)
class DeviceRow:
    id: int
    serial: str
    board_id: int
    board: str
    product_id: int | None
    version: ImageVersion


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scopes: str


@dataclass(frozen=True)
class ReportOutcome:
    attempt_id: int
    release_id: int
    state: str
    changed: bool
    note: str = ""


@dataclass(frozen=True)
class Artifact:
    """A release as one device may fetch it, with where that device's attempt stands."""

    release_id: int
    sha256: str
    size: int
    file_name: str
    attempt_state: str


@dataclass(frozen=True)
class Progress:
    """Where a rollout's devices stand, each by its latest attempt."""

    tally: rollout_policy.Tally
    counts: dict[str, int]
    retried: int
    """Attempts that were retries (a device's second attempt onwards)."""
    done: int
    """Devices with a final result: success, reverted, or failure with no attempt left."""


@dataclass(frozen=True)
class Job:
    """An offer together with the attempt it belongs to."""

    offer: Offer
    attempt_id: int


def _version(row: Any) -> ImageVersion:
    return ImageVersion(row.v_major, row.v_minor, row.v_revision, row.v_build)


def _version_columns(version: ImageVersion) -> dict[str, int]:
    return {"v_major": version.major, "v_minor": version.minor, "v_revision": version.revision,
            "v_build": version.build}


def _insert(conn: Connection, statement: Any) -> int:
    """Run an INSERT and return the new row's integer primary key."""
    return int(conn.execute(statement).inserted_primary_key[0])  # type: ignore[index]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class Fleet:
    """All operations of the update service; thread-safe (each call runs its own transaction)."""

    def __init__(self, db: Database, blobs: BlobStore, *, require_signatures: bool = True,
                 manufacturer: str = "mcuota", manufacturer_id: str = "MCUOTA",
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.blobs = blobs
        self.require_signatures = require_signatures
        self.manufacturer = manufacturer
        self.manufacturer_id = manufacturer_id
        self.clock = clock
        self._blob_lock = threading.Lock()
        self._key_cache: dict[int, PublicKey] = {}
        self._devices_by_token: TtlCache[DeviceRow] = TtlCache()
        self._artifacts: TtlCache[Artifact] = TtlCache()
        # Built once, with bind parameters, for the queries every check-in runs: building a statement
        # and its cache key costs more than SQLite takes to answer it.
        self._device_by_id = self._device_query().where(devices.c.id == bindparam("device_id"))
        self._device_by_token = self._device_query().where(devices.c.token_hash == bindparam("token_hash"))
        self._open_attempts = (
            self._release_query().add_columns(attempts.c.id.label("attempt_id"),
                                              attempts.c.state.label("a_state"),
                                              attempts.c.rollout_id.label("a_rollout"),
                                              rollouts.c.state.label("r_state"),
                                              rollouts.c.allow_downgrade)
            .join(attempts, attempts.c.release_id == releases.c.id)
            .outerjoin(rollouts, attempts.c.rollout_id == rollouts.c.id)
            .where(attempts.c.device_id == bindparam("device_id"), attempts.c.state.not_in(TERMINAL))
            .order_by(attempts.c.id.desc()))
        self.on_report: list[Callable[[ReportOutcome], None]] = []

    # --- start-up ----------------------------------------------------------------------------------

    def sweep_blobs(self) -> list[str]:
        """Delete blobs no release refers to (an upload cut short by a crash); returns their digests."""
        with self._blob_lock:
            with self.db.read() as conn:
                keep = set(conn.execute(select(releases.c.sha256)).scalars())
            gone = self.blobs.sweep(keep)
        for digest in gone:
            log.info("removed orphan blob", extra={"sha256": digest})
        self._fill_missing_md5()
        return gone

    def _fill_missing_md5(self) -> None:
        """Releases stored before the MD5 was kept get it from their blob (the migration could not
        reach the blob store, e.g. on PostgreSQL)."""
        with self.db.read() as conn:
            missing = conn.execute(select(releases.c.id, releases.c.sha256)
                                   .where(releases.c.md5.is_(None))).all()
        for row in missing:
            try:
                digest = hashlib.md5(self.blobs.read(row.sha256), usedforsecurity=False).hexdigest()
            except (OSError, ValueError):
                log.warning("release blob missing; its MD5 stays unknown", extra={"release": row.id})
                continue
            with self.db.write() as conn:
                conn.execute(update(releases).where(releases.c.id == row.id).values(md5=digest))

    def ensure_admin_key(self) -> str | None:
        """Create the first admin key when no key exists; returns its secret (shown once) or None."""
        with self.db.write() as conn:
            if conn.execute(select(func.count()).select_from(api_keys)).scalar_one():
                return None
            secret = credentials.new_secret(credentials.ADMIN_PREFIX)
            conn.execute(api_keys.insert().values(name="admin", key_hash=credentials.digest(secret),
                                                  scopes="read write admin", created_at=self.clock()))
            self._audit(conn, "server", "api_key.create", "admin", {"scopes": "read write admin"})
        return secret

    # --- authentication ----------------------------------------------------------------------------

    def authenticate_key(self, secret: str) -> ApiKey:
        hashed = credentials.digest(secret)
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hashed)).first()
        if row is None or row.revoked_at is not None or not credentials.matches(secret, row.key_hash):
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return ApiKey(row.id, row.name, row.scopes)

    def cached_device(self, token: str) -> DeviceRow | None:
        """The device of a token verified in the last seconds, without touching the database; None
        means "ask :meth:`authenticate_device`"."""
        return self._devices_by_token.get(credentials.digest(token))

    def authenticate_device(self, token: str, serial: str | None = None) -> DeviceRow:
        """The device a token belongs to; with ``serial``, also that it is that device's token."""
        hashed = credentials.digest(token)
        device = self._devices_by_token.get(hashed)
        if device is None:
            with self.db.read() as conn:
                row = conn.execute(self._device_by_token, {"token_hash": hashed}).first()
            if row is None or not credentials.matches(token, row.token_hash):
                raise Unauthorized("invalid device token", code="invalid_token")
            device = self._device_row(row)
            self._devices_by_token.put(hashed, device.id, device)
        if serial is not None and device.serial != serial:
            raise Forbidden(f"this token does not belong to device {serial}", code="wrong_device")
        return device

    def create_api_key(self, name: str, scopes: str | Sequence[str], actor: str) -> dict[str, Any]:
        check_name(name, "key name")
        try:
            canonical = credentials.normalise_scopes(scopes if isinstance(scopes, str) else list(scopes))
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_scope") from None
        secret = credentials.new_secret(credentials.ADMIN_PREFIX)
        with self.db.write() as conn:
            key_id = _insert(conn, api_keys.insert().values(
                name=name, key_hash=credentials.digest(secret), scopes=canonical,
                created_at=self.clock()))
            self._audit(conn, actor, "api_key.create", name, {"id": key_id, "scopes": canonical})
        return {"id": key_id, "name": name, "scopes": canonical.split(), "key": secret}

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [{"id": r.id, "name": r.name, "scopes": r.scopes.split(), "created_at": _iso(r.created_at),
                 "revoked": r.revoked_at is not None} for r in rows]

    def revoke_api_key(self, key_id: int, actor: str) -> dict[str, Any]:
        with self.db.write() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise NotFound(f"unknown API key {key_id}", code="unknown_api_key")
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=self.clock()))
            self._audit(conn, actor, "api_key.revoke", row.name, {"id": key_id})
        return {"id": key_id, "name": row.name, "scopes": row.scopes.split(),
                "created_at": _iso(row.created_at), "revoked": True}

    # --- products and boards -----------------------------------------------------------------------

    def create_product(self, name: str, manufacturer: str | None, manufacturer_id: str | None,
                       actor: str) -> dict[str, Any]:
        check_name(name, "product")
        with self.db.write() as conn:
            if conn.execute(select(products.c.id).where(products.c.name == name)).first():
                raise Conflict(f"product {name} already exists", code="product_exists")
            self._insert_product(conn, name, manufacturer, manufacturer_id)
            self._audit(conn, actor, "product.create", name, {"manufacturer": manufacturer,
                                                              "manufacturer_id": manufacturer_id})
            return self._product_dict(conn, name)

    def list_products(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            names = conn.execute(select(products.c.name).order_by(products.c.name)).scalars().all()
            return [self._product_dict(conn, n) for n in names]

    def create_board(self, name: str, product: str | None, actor: str) -> dict[str, Any]:
        check_name(name, "board")
        with self.db.write() as conn:
            if conn.execute(select(boards.c.id).where(boards.c.name == name)).first():
                raise Conflict(f"board {name} already exists", code="board_exists")
            product_id = self._ensure_product(conn, product) if product else None
            conn.execute(boards.insert().values(name=name, product_id=product_id, created_at=self.clock()))
            self._audit(conn, actor, "board.create", name, {"product": product})
            return self._board_dict(conn, name)

    def list_boards(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            names = conn.execute(select(boards.c.name).order_by(boards.c.name)).scalars().all()
            return [self._board_dict(conn, n) for n in names]

    def _insert_product(self, conn: Connection, name: str, manufacturer: str | None,
                        manufacturer_id: str | None) -> int:
        result = conn.execute(products.insert().values(
            name=name, manufacturer=manufacturer or self.manufacturer,
            manufacturer_id=manufacturer_id or self.manufacturer_id, created_at=self.clock()))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def _ensure_product(self, conn: Connection, name: str) -> int:
        check_name(name, "product")
        found = conn.execute(select(products.c.id).where(products.c.name == name)).scalar()
        return int(found) if found is not None else self._insert_product(conn, name, None, None)

    @staticmethod
    def _board_product(conn: Connection, board_id: int) -> int | None:
        found = conn.execute(select(boards.c.product_id).where(boards.c.id == board_id)).scalar()
        return None if found is None else int(found)

    def _board_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(boards.c.id).where(boards.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"unknown board {name!r} (upload a release for it or create it with POST "
                           "/api/v1/boards)", code="unknown_board")
        return int(found)

    def _product_dict(self, conn: Connection, name: str) -> dict[str, Any]:
        row = conn.execute(select(products).where(products.c.name == name)).one()
        return {"name": row.name, "manufacturer": row.manufacturer, "manufacturer_id": row.manufacturer_id,
                "created_at": _iso(row.created_at)}

    def _board_dict(self, conn: Connection, name: str) -> dict[str, Any]:
        row = conn.execute(select(boards.c.name, boards.c.created_at, products.c.name.label("product"))
                           .select_from(boards.outerjoin(products, boards.c.product_id == products.c.id))
                           .where(boards.c.name == name)).one()
        return {"name": row.name, "product": row.product, "created_at": _iso(row.created_at)}

    # --- trust -------------------------------------------------------------------------------------

    def add_trusted_key(self, pem: str, board: str | None, actor: str) -> dict[str, Any]:
        try:
            key = load_public_key(pem.encode(), name="the key")
        except KeyFileError as exc:
            raise Rejected(str(exc), code="invalid_key") from None
        with self.db.write() as conn:
            board_id = self._board_id(conn, board) if board is not None else None
            same_board = (signing_keys.c.board_id.is_(None) if board_id is None
                          else signing_keys.c.board_id == board_id)
            same = conn.execute(select(signing_keys.c.id).where(
                signing_keys.c.key_hash == key.key_hash.hex(), same_board)).first()
            if same is not None:
                raise Conflict(f"key {key.key_hash.hex()[:16]}… is already trusted"
                               f"{' for board ' + board if board else ''}", code="key_exists")
            key_id = _insert(conn, signing_keys.insert().values(
                key_hash=key.key_hash.hex(), key_type=key.type, pem=key.pem().decode(), board_id=board_id,
                created_at=self.clock()))
            self._audit(conn, actor, "trust.add", key.key_hash.hex(), {"board": board, "type": key.type})
        return {"id": key_id, "key_hash": key.key_hash.hex(), "key_type": key.type, "board": board,
                "created_at": _iso(self.clock())}

    def list_trusted_keys(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(signing_keys, boards.c.name.label("board"))
                .select_from(signing_keys.outerjoin(boards, signing_keys.c.board_id == boards.c.id))
                .order_by(signing_keys.c.id)).all()
        return [{"id": r.id, "key_hash": r.key_hash, "key_type": r.key_type, "board": r.board,
                 "created_at": _iso(r.created_at)} for r in rows]

    def remove_trusted_key(self, key_id: int, actor: str) -> None:
        with self.db.write() as conn:
            row = conn.execute(select(signing_keys).where(signing_keys.c.id == key_id)).first()
            if row is None:
                raise NotFound(f"unknown trusted key {key_id}", code="unknown_key")
            conn.execute(signing_keys.delete().where(signing_keys.c.id == key_id))
            self._audit(conn, actor, "trust.remove", row.key_hash, {"id": key_id})
        self._key_cache.pop(key_id, None)

    def _trusted_for(self, conn: Connection, board_id: int | None) -> list[PublicKey]:
        condition: ColumnElement[bool] = signing_keys.c.board_id.is_(None)
        if board_id is not None:
            condition = or_(condition, signing_keys.c.board_id == board_id)
        keys = []
        for row in conn.execute(select(signing_keys.c.id, signing_keys.c.pem).where(condition)
                                .order_by(signing_keys.c.id)):
            key = self._key_cache.get(row.id)
            if key is None:
                key = self._key_cache[row.id] = load_public_key(row.pem.encode())
            keys.append(key)
        return keys

    # --- releases ----------------------------------------------------------------------------------

    def upload_release(self, data: bytes, *, board: str, product: str | None = None,
                       file_name: str | None = None, image_format: str = "auto", version: str | None = None,
                       actor: str) -> dict[str, Any]:
        """Verify ``data`` as a release for ``board`` and store blob and row together; ``image_format``
        and ``version`` name what a bare application cannot say itself (format "gizwits")."""
        check_name(board, "board")
        if product is not None:
            check_name(product, "product")
        if file_name is not None:
            check_file_name(file_name)
        with self.db.read() as conn:
            board_id = conn.execute(select(boards.c.id).where(boards.c.name == board)).scalar()
            trusted = self._trusted_for(conn, board_id)
        checked = check_image(data, board=board, trusted=trusted, require_signatures=self.require_signatures,
                              image_format=image_format, version=version)
        with self._blob_lock:
            digest = self.blobs.put(data)
            try:
                release_id = self._insert_release(checked, digest, board=board, product=product,
                                                  file_name=file_name, actor=actor)
            except BaseException:
                self._drop_blob_if_unused(digest)
                raise
        release = self.get_release(release_id)
        release["summary"] = checked.summary
        return release

    def _insert_release(self, checked: CheckedImage, digest: str, *, board: str, product: str | None,
                        file_name: str | None, actor: str) -> int:
        version = checked.version
        try:
            with self.db.write() as conn:
                product_id = self._ensure_product(conn, product) if product else None
                board_id = conn.execute(select(boards.c.id).where(boards.c.name == board)).scalar()
                if board_id is None:
                    board_id = _insert(conn, boards.insert().values(
                        name=board, product_id=product_id, created_at=self.clock()))
                elif product_id is None:
                    product_id = self._board_product(conn, board_id)
                existing = conn.execute(select(releases.c.id).where(
                    releases.c.board_id == board_id, releases.c.v_major == version.major,
                    releases.c.v_minor == version.minor, releases.c.v_revision == version.revision)).scalar()
                if existing is not None:
                    raise Conflict(f"board {board} already has a release of version {version} (release "
                                   f"{existing})", code="duplicate_version")
                product_name = (conn.execute(select(products.c.name).where(products.c.id == product_id))
                                .scalar() if product_id is not None else None)
                stem = f"{product_name}_{board}" if product_name else board
                build = f"-{version.build}" if version.build else ""
                name = file_name or f"{stem}_v{version.major}.{version.minor}.{version.revision}{build}.bin"
                release_id = _insert(conn, releases.insert().values(
                    board_id=board_id, product_id=product_id, version=str(version),
                    **_version_columns(version), sha256=digest, size=checked.size, md5=checked.md5,
                    format=checked.format, file_name=name,
                    signed=checked.signed, key_hash=checked.key_hash, created_at=self.clock(),
                ))
                self._audit(conn, actor, "release.upload", str(release_id),
                            {"board": board, "version": str(version), "sha256": digest, "size": checked.size,
                             "signed": checked.signed, "format": checked.format, "summary": checked.summary})
        except IntegrityError:
            raise Conflict(f"board {board} already has a release of version {version}",
                           code="duplicate_version") from None
        return release_id

    def _drop_blob_if_unused(self, digest: str) -> None:
        with self.db.read() as conn:
            used = conn.execute(select(releases.c.id).where(releases.c.sha256 == digest)).first()
        if used is None:
            self.blobs.delete(digest)

    def _release_query(self) -> Any:
        return (select(releases, boards.c.name.label("board"), products.c.name.label("product"),
                       products.c.manufacturer, products.c.manufacturer_id)
                .select_from(releases.join(boards, releases.c.board_id == boards.c.id)
                             .outerjoin(products, releases.c.product_id == products.c.id)))

    @staticmethod
    def _release_dict(row: Row[Any]) -> dict[str, Any]:
        soft_ver = soft_ver_from_version(_version(row)) if row.format == "gizwits" else None
        return {"id": row.id, "board": row.board, "product": row.product, "version": row.version,
                "sha256": row.sha256, "size": row.size, "md5": row.md5, "format": row.format,
                "soft_ver": soft_ver, "file_name": row.file_name,
                "signed": row.signed, "key_hash": row.key_hash, "created_at": _iso(row.created_at)}

    def get_release(self, release_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(self._release_query().where(releases.c.id == release_id)).first()
        if row is None:
            raise NotFound(f"unknown release {release_id}", code="unknown_release")
        return self._release_dict(row)

    def list_releases(self, board: str | None = None) -> list[dict[str, Any]]:
        query = self._release_query().order_by(releases.c.id)
        if board is not None:
            query = query.where(boards.c.name == board)
        with self.db.read() as conn:
            return [self._release_dict(r) for r in conn.execute(query)]

    def release_blob(self, release_id: int) -> tuple[str, int, str]:
        """(sha256, size, file name) of a release."""
        with self.db.read() as conn:
            row = conn.execute(select(releases.c.sha256, releases.c.size, releases.c.file_name)
                               .where(releases.c.id == release_id)).first()
        if row is None:
            raise NotFound(f"unknown release {release_id}", code="unknown_release")
        return row.sha256, row.size, row.file_name

    def _offer(self, row: Row[Any]) -> Offer:
        return Offer(release_id=str(row.id), version=_version(row), board=row.board, size=row.size,
                     sha256=row.sha256, file_name=row.file_name, image_format=row.format,
                     product=row.product or "", manufacturer=row.manufacturer or self.manufacturer,
                     manufacturer_id=row.manufacturer_id or self.manufacturer_id, md5=row.md5 or "")

    # --- devices -----------------------------------------------------------------------------------

    def _device_query(self) -> Any:
        return (select(devices, boards.c.name.label("board"))
                .select_from(devices.join(boards, devices.c.board_id == boards.c.id)))

    @staticmethod
    def _device_row(row: Row[Any]) -> DeviceRow:
        return DeviceRow(row.id, row.serial, row.board_id, row.board, row.product_id, _version(row))

    def _device_by_serial(self, conn: Connection, serial: str) -> DeviceRow:
        row = conn.execute(self._device_query().where(devices.c.serial == serial)).first()
        if row is None:
            raise NotFound(f"unknown device {serial!r}", code="unknown_device")
        return self._device_row(row)

    def add_device(self, serial: str, *, board: str, product: str | None = None, version: str = "0.0.0",
                   tags: Iterable[str] = (), actor: str) -> dict[str, Any]:
        """Register a device; the returned dict carries its token, which is never shown again."""
        check_name(serial, "serial")
        tag_list = sorted({check_tag(t) for t in tags})
        running = self._parse_version(version)
        token = credentials.new_secret(credentials.DEVICE_PREFIX)
        try:
            with self.db.write() as conn:
                board_id = self._board_id(conn, board)
                if conn.execute(select(devices.c.id).where(devices.c.serial == serial)).first():
                    raise Conflict(f"device {serial} is already registered", code="device_exists")
                product_id = (self._ensure_product(conn, product) if product
                              else self._board_product(conn, board_id))
                device_id = _insert(conn, devices.insert().values(
                    serial=serial, board_id=board_id, product_id=product_id, version=str(running),
                    **_version_columns(running), token_hash=credentials.digest(token),
                    created_at=self.clock()))
                if tag_list:
                    conn.execute(device_tags.insert(), [{"device_id": device_id, "tag": t} for t in tag_list])
                self._audit(conn, actor, "device.add", serial, {"board": board, "version": str(running),
                                                                "tags": tag_list})
        except IntegrityError:
            raise Conflict(f"device {serial} is already registered", code="device_exists") from None
        info = self.get_device(serial)
        info["token"] = token
        return info

    def rotate_token(self, serial: str, actor: str) -> dict[str, Any]:
        token = credentials.new_secret(credentials.DEVICE_PREFIX)
        with self.db.write() as conn:
            device = self._device_by_serial(conn, serial)
            conn.execute(update(devices).where(devices.c.id == device.id)
                         .values(token_hash=credentials.digest(token)))
            self._audit(conn, actor, "device.token", serial, {})
        self._devices_by_token.forget_owner(device.id)
        return {"serial": serial, "token": token}

    def set_tags(self, serial: str, tags: Iterable[str], actor: str) -> dict[str, Any]:
        tag_list = sorted({check_tag(t) for t in tags})
        with self.db.write() as conn:
            device = self._device_by_serial(conn, serial)
            conn.execute(device_tags.delete().where(device_tags.c.device_id == device.id))
            if tag_list:
                conn.execute(device_tags.insert(), [{"device_id": device.id, "tag": t} for t in tag_list])
            self._audit(conn, actor, "device.tags", serial, {"tags": tag_list})
        return self.get_device(serial)

    def _device_dict(self, conn: Connection, row: Row[Any]) -> dict[str, Any]:
        tags = conn.execute(select(device_tags.c.tag).where(device_tags.c.device_id == row.id)
                            .order_by(device_tags.c.tag)).scalars().all()
        product = (conn.execute(select(products.c.name).where(products.c.id == row.product_id)).scalar()
                   if row.product_id is not None else None)
        return {"serial": row.serial, "board": row.board, "product": product, "version": row.version,
                "tags": list(tags), "created_at": _iso(row.created_at),
                "last_seen_at": _iso(row.last_seen_at)}

    def get_device(self, serial: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(self._device_query().where(devices.c.serial == serial)).first()
            if row is None:
                raise NotFound(f"unknown device {serial!r}", code="unknown_device")
            info = self._device_dict(conn, row)
            info["attempts"] = self._attempts_of(conn, row.id)
        return info

    def list_devices(self, board: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        query = self._device_query().order_by(devices.c.serial)
        if board is not None:
            query = query.where(boards.c.name == board)
        if tag is not None:
            tagged = select(device_tags.c.device_id).where(device_tags.c.tag == tag)
            query = query.where(devices.c.id.in_(tagged))
        with self.db.read() as conn:
            return [self._device_dict(conn, r) for r in conn.execute(query)]

    def _attempts_of(self, conn: Connection, device_id: int) -> list[dict[str, Any]]:
        rows = conn.execute(select(attempts, releases.c.version)
                            .select_from(attempts.join(releases, attempts.c.release_id == releases.c.id))
                            .where(attempts.c.device_id == device_id).order_by(attempts.c.id)).all()
        result = []
        for r in rows:
            history = conn.execute(select(attempt_events).where(attempt_events.c.attempt_id == r.id)
                                   .order_by(attempt_events.c.id)).all()
            result.append({"id": r.id, "release_id": r.release_id, "version": r.version,
                           "rollout_id": r.rollout_id, "state": r.state, "reason": r.reason,
                           "created_at": _iso(r.created_at), "updated_at": _iso(r.updated_at),
                           "history": [{"state": h.state, "reason": h.reason, "at": _iso(h.created_at)}
                                       for h in history]})
        return result

    @staticmethod
    def _parse_version(text: str) -> ImageVersion:
        try:
            return ImageVersion.parse(text)
        except Exception as exc:  # UsageError for the syntax, out-of-range fields alike
            raise BadRequest(str(exc), code="invalid_version") from None

    # --- delivery: offers ----------------------------------------------------------------------------

    def checkin(self, device: DeviceRow, board: str | None, version: str | None) -> Job | None:
        """A device asks for work: record what it runs, then offer (or re-offer) a job."""
        running = self._parse_version(version) if version is not None else None
        if board is not None and board != device.board:
            raise Conflict(f"device {device.serial} is registered as board {device.board}, it reports "
                           f"{board}", code="board_mismatch")
        return self._job_for(device.id, running)

    def offer_for(self, serial: str, board: str, running_version: ImageVersion) -> Offer | None:
        """UpdateCatalog: the release ``serial`` should install now (None for an unknown device)."""
        with self.db.read() as conn:
            row = conn.execute(self._device_query().where(devices.c.serial == serial)).first()
        if row is None:
            log.info("offer asked for an unknown device", extra={"serial": serial})
            return None
        if board != row.board:
            log.info("device reports another board", extra={"serial": serial, "board": board})
            return None
        job = self._job_for(row.id, running_version)
        return None if job is None else job.offer

    def job_for(self, device: DeviceRow) -> Job | None:
        """The job of a device that asked without saying what it runs (the seed-002 HTTP flow)."""
        return self._job_for(device.id, None)

    def _job_for(self, device_id: int, running: ImageVersion | None) -> Job | None:
        # Most check-ins change nothing (a device re-asking for the job it has, or told "no update"):
        # answer those from a read transaction, which on SQLite runs beside others instead of queueing
        # for the one writer; the first write the answer would need sends it to a write transaction.
        try:
            with self.db.read() as conn:
                return self._job_in(conn, device_id, running, read_only=True)
        except _NeedsWrite:
            pass
        for _ in range(3):
            try:
                with self.db.write() as conn:
                    job = self._job_in(conn, device_id, running)
            except IntegrityError:  # a concurrent check-in of the same device admitted it first
                continue
            # Again after the commit: a download that read the old newest attempt meanwhile may have
            # cached it after the drop inside the transaction.
            self._artifacts.forget_owner(device_id)
            return job
        raise Conflict("concurrent check-ins of the same device; try again", code="concurrent_checkin")

    def _job_in(self, conn: Connection, device_id: int, running: ImageVersion | None, *,
                read_only: bool = False) -> Job | None:
        row = conn.execute(self._device_by_id, {"device_id": device_id}).one()
        device = self._device_row(row)
        now = self.clock()
        values: dict[str, Any] = {}
        if row.last_seen_at is None or now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
            values["last_seen_at"] = now
        if running is not None and (running, running.build) != (device.version, device.version.build):
            values.update(last_seen_at=now, version=str(running), **_version_columns(running))
            device = DeviceRow(device.id, device.serial, device.board_id, device.board, device.product_id,
                               running)
        if values and read_only:
            raise _NeedsWrite
        if values:
            conn.execute(update(devices).where(devices.c.id == device.id).values(**values))
        current = device.version

        # 1. an attempt already under way
        open_rows = conn.execute(self._open_attempts, {"device_id": device.id}).all()
        for r in open_rows:
            target = _version(r)
            if target == current and r.a_state in ("installing", "rebooting", "downloaded"):
                if read_only:
                    raise _NeedsWrite
                self._advance(conn, r.attempt_id, r.a_state, "success",
                              "device checked in running the release's version")
                if r.a_rollout is not None:
                    self._evaluate(conn, r.a_rollout)
                continue
            if r.r_state not in (None, "active"):
                continue
            if self._gate(current, target, bool(r.allow_downgrade)):
                return Job(self._offer(r), r.attempt_id)

        # 2. a rollout that wants this device
        tags = set(conn.execute(select(device_tags.c.tag)
                                .where(device_tags.c.device_id == device.id)).scalars())
        mine = and_(attempts.c.device_id == device.id, attempts.c.rollout_id == rollouts.c.id)
        # Finished with this rollout: any attempt that is not a failure (under way, succeeded, reverted,
        # cancelled), or the failure that used the last attempt allowed.
        finished = exists().where(mine, or_(attempts.c.state != "failure",
                                            attempts.c.attempt_no >= rollouts.c.max_attempts))
        prior = select(func.count()).select_from(attempts).where(mine).scalar_subquery()
        candidates = conn.execute(
            self._release_query().add_columns(
                rollouts.c.id.label("rollout_id"), rollouts.c.tags.label("r_tags"), rollouts.c.stages,
                rollouts.c.stage_index, rollouts.c.allow_downgrade, rollouts.c.admitted,
                rollouts.c.halt_failure_rate, rollouts.c.min_attempts, rollouts.c.advance_success_rate,
                rollouts.c.max_attempts, prior.label("prior_attempts"))
            .join(rollouts, rollouts.c.release_id == releases.c.id)
            .where(rollouts.c.state == "active", rollouts.c.board_id == device.board_id,
                   or_(releases.c.product_id.is_(None), releases.c.product_id == device.product_id),
                   ~finished)
            .order_by(rollouts.c.id.desc())).all()
        for r in candidates:
            if not set(json.loads(r.r_tags)) <= tags:
                continue
            if not self._gate(current, _version(r), bool(r.allow_downgrade)):
                continue
            if read_only:
                raise _NeedsWrite
            number = int(r.prior_attempts) + 1
            if number == 1:
                # A retry keeps the place its device was admitted to; only a first attempt takes one.
                policy = self._policy(r)
                room = [] if rollout_policy.admits_every_target(policy.stages, r.stage_index) else [
                    rollouts.c.admitted < rollout_policy.stage_cap(policy.stages, r.stage_index,
                                                                   self._targets(conn, r.rollout_id))]
                admitted = conn.execute(update(rollouts).where(
                    rollouts.c.id == r.rollout_id, rollouts.c.state == "active", *room,
                ).values(admitted=rollouts.c.admitted + 1, updated_at=now))
                if admitted.rowcount != 1:
                    continue
                why = f"rollout {r.rollout_id} stage {r.stage_index + 1}"
            else:
                why = f"rollout {r.rollout_id} retry: attempt {number} of {r.max_attempts}"
            attempt_id = _insert(conn, attempts.insert().values(
                device_id=device.id, release_id=r.id, rollout_id=r.rollout_id, state="offered", reason="",
                stage_index=r.stage_index, attempt_no=number, created_at=now, updated_at=now))
            self._artifacts.forget_owner(device.id)
            conn.execute(attempt_events.insert().values(
                attempt_id=attempt_id, state="offered", reason=why, created_at=now))
            return Job(self._offer(r), attempt_id)
        return None

    @staticmethod
    def _gate(running: ImageVersion, target: ImageVersion, allow_downgrade: bool) -> bool:
        """Seed 000's rule: never offer a version <= the running one, unless explicitly downgrading."""
        return target != running if allow_downgrade else target > running

    @staticmethod
    def _policy(row: Any) -> rollout_policy.Policy:
        return rollout_policy.Policy(tuple(json.loads(row.stages)), row.advance_success_rate,
                                     row.halt_failure_rate, row.min_attempts)

    def _targets(self, conn: Connection, rollout_id: int) -> int:
        """Devices the rollout could update now, plus those it already admitted."""
        r = conn.execute(select(rollouts, releases.c.v_major, releases.c.v_minor, releases.c.v_revision,
                                releases.c.product_id)
                         .select_from(rollouts.join(releases, rollouts.c.release_id == releases.c.id))
                         .where(rollouts.c.id == rollout_id)).one()
        target = (r.v_major, r.v_minor, r.v_revision)
        mine = tuple_(devices.c.v_major, devices.c.v_minor, devices.c.v_revision)
        gate = mine != tuple_(*target) if r.allow_downgrade else mine < tuple_(*target)
        tags = json.loads(r.tags)
        conditions = [devices.c.board_id == r.board_id,
                      or_(gate, devices.c.id.in_(select(attempts.c.device_id)
                                                 .where(attempts.c.rollout_id == rollout_id)))]
        if r.product_id is not None:
            conditions.append(devices.c.product_id == r.product_id)
        if tags:
            conditions.append(devices.c.id.in_(
                select(device_tags.c.device_id).where(device_tags.c.tag.in_(tags))
                .group_by(device_tags.c.device_id).having(func.count() == len(tags))))
        count = select(func.count()).select_from(devices).where(and_(*conditions))
        return int(conn.execute(count).scalar_one())

    # --- delivery: artifacts -------------------------------------------------------------------------

    def artifact(self, release_id: str) -> bytes:
        """UpdateCatalog: a release's bytes (KeyError when unknown)."""
        try:
            digest, _, _ = self.release_blob(int(release_id))
        except (ValueError, NotFound):
            raise KeyError(release_id) from None
        return self.blobs.read(digest)

    def cached_artifact(self, device: DeviceRow, release_id: int) -> Artifact | None:
        """:meth:`device_artifact` when it was answered in the last seconds (never in the "offered"
        state, so :meth:`note_download` has nothing to do for it); None means "ask the database"."""
        return self._artifacts.get(f"{device.id}:{release_id}")

    def device_artifact(self, device: DeviceRow, release_id: int | None = None,
                        file_name: str | None = None) -> Artifact:
        """A release the device has a job for; any other release (another device's, or none at all)
        is "not found" to it.

        Attempts are never deleted, so "release R is a job of device D" stays true once it is; what can
        change is which attempt is the newest, only by a new one (always "offered", which drops the
        device's entries). The state matters only while "offered", so only other states are kept."""
        key = f"{device.id}:{release_id}"
        if release_id is not None and file_name is None:
            cached = self._artifacts.get(key)
            if cached is not None:
                return cached
        query = (select(releases.c.id, releases.c.sha256, releases.c.size, releases.c.file_name,
                        attempts.c.state)
                 .select_from(attempts.join(releases, attempts.c.release_id == releases.c.id))
                 .where(attempts.c.device_id == device.id).order_by(attempts.c.id.desc()))
        if release_id is not None:
            query = query.where(releases.c.id == release_id)
        if file_name is not None:
            query = query.where(releases.c.file_name == file_name)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            what = f"release {release_id}" if release_id is not None else f"file {file_name}"
            raise NotFound(f"{what} is not an update job of device {device.serial}", code="no_such_job")
        artifact = Artifact(row.id, row.sha256, row.size, row.file_name, row.state)
        if release_id is not None and file_name is None and artifact.attempt_state != "offered":
            self._artifacts.put(key, device.id, artifact)
        return artifact

    def note_download(self, device: DeviceRow, artifact: Artifact) -> None:
        """The server saw the device fetch its job's bytes: move an "offered" attempt to downloading."""
        if artifact.attempt_state == "offered":
            self.report(device, artifact.release_id, "downloading", "first byte range served")

    # --- delivery: reports ---------------------------------------------------------------------------

    def report(self, device: DeviceRow, release_id: int | None, state: str, reason: str = ""
               ) -> ReportOutcome:
        """Record a device's progress or result; idempotent, never moves an attempt backwards."""
        if state not in REPORTABLE:
            raise BadRequest(f"unknown state {state!r}; one of {', '.join(REPORTABLE)}", code="invalid_state")
        reason = reason[:1000]
        for _ in range(3):
            try:
                with self.db.write() as conn:
                    outcome = self._report_in(conn, device, release_id, state, reason)
                break
            except IntegrityError:
                continue
        else:
            raise Conflict("concurrent reports for the same attempt; repeat the report",
                           code="concurrent_report")
        for hook in self.on_report:
            hook(outcome)
        return outcome

    def _report_in(self, conn: Connection, device: DeviceRow, release_id: int | None, state: str,
                   reason: str) -> ReportOutcome:
        query = select(attempts).where(attempts.c.device_id == device.id).order_by(attempts.c.id.desc())
        if release_id is not None:
            query = query.where(attempts.c.release_id == release_id)
        row = conn.execute(query.with_for_update()).first()
        if row is None:
            what = f"release {release_id}" if release_id is not None else "any release"
            raise NotFound(f"device {device.serial} has no update job for {what}", code="no_such_job")
        current = row.state
        if current == state:
            return ReportOutcome(row.id, row.release_id, current, False, "repeated report")
        if _RANK[state] < _RANK[current] and current != "cancelled":
            return ReportOutcome(row.id, row.release_id, current, False,
                                 f"late {state!r} report ignored: the attempt is already {current!r}")
        if _RANK[state] == _RANK[current] and current in TERMINAL:
            raise Conflict(f"the update of device {device.serial} to release {row.release_id} already ended "
                           f"in {current!r}; a {state!r} report contradicts it", code="conflicting_report",
                           extra={"state": current})
        if current == "cancelled" and state not in TERMINAL:
            return ReportOutcome(row.id, row.release_id, current, False, "the rollout was cancelled")
        self._advance(conn, row.id, current, state, reason)
        if state == "success":
            release = conn.execute(select(releases).where(releases.c.id == row.release_id)).one()
            version = _version(release)
            conn.execute(update(devices).where(devices.c.id == device.id)
                         .values(version=str(version), **_version_columns(version)))
        if row.rollout_id is not None and state in TERMINAL:
            self._evaluate(conn, row.rollout_id)
        return ReportOutcome(row.id, row.release_id, state, True)

    def _advance(self, conn: Connection, attempt_id: int, current: str, state: str, reason: str) -> None:
        now = self.clock()
        conn.execute(update(attempts).where(attempts.c.id == attempt_id, attempts.c.state == current)
                     .values(state=state, reason=reason, updated_at=now))
        conn.execute(attempt_events.insert().values(attempt_id=attempt_id, state=state, reason=reason,
                                                    created_at=now))

    def record_report(self, report: DeviceReport) -> None:
        """UpdateCatalog: store a report from a delivery path that knows the serial, not a token."""
        with self.db.read() as conn:
            device = self._device_by_serial(conn, report.serial)
        release_id = None
        if report.release_id is not None:
            try:
                release_id = int(report.release_id)
            except ValueError:
                raise NotFound(f"unknown release {report.release_id!r}", code="unknown_release") from None
        self.report(device, release_id, report.state, report.reason)

    # --- rollouts ----------------------------------------------------------------------------------

    def create_rollout(self, release_id: int, *, board: str | None = None, tags: Iterable[str] = (),
                       stages: Sequence[int] = rollout_policy.DEFAULT_STAGES,
                       halt_failure_rate: float = 0.1, min_attempts: int = 20,
                       advance_success_rate: float = 0.9, allow_downgrade: bool = False,
                       max_attempts: int = 3, actor: str) -> dict[str, Any]:
        tag_list = sorted({check_tag(t) for t in tags})
        if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise BadRequest(f"max attempts {max_attempts} is not between 1 and {MAX_ATTEMPTS_LIMIT}",
                             code="invalid_rollout")
        try:
            policy = rollout_policy.Policy(tuple(stages), advance_success_rate, halt_failure_rate,
                                           min_attempts)
        except rollout_policy.PolicyError as exc:
            raise BadRequest(str(exc), code="invalid_rollout") from None
        now = self.clock()
        with self.db.write() as conn:
            release = conn.execute(self._release_query().where(releases.c.id == release_id)).first()
            if release is None:
                raise NotFound(f"unknown release {release_id}", code="unknown_release")
            if board is not None:
                self._board_id(conn, board)
                if board != release.board:
                    raise BadRequest(f"release {release_id} is for board {release.board}, not {board}",
                                     code="wrong_board")
            rollout_id = _insert(conn, rollouts.insert().values(
                release_id=release_id, board_id=release.board_id, tags=json.dumps(tag_list),
                stages=json.dumps(list(policy.stages)), stage_index=0, state="active",
                halt_failure_rate=policy.halt_failure_rate, min_attempts=policy.min_attempts,
                advance_success_rate=policy.advance_success_rate, allow_downgrade=allow_downgrade,
                max_attempts=max_attempts, admitted=0, reason="created", created_at=now, updated_at=now))
            self._audit(conn, actor, "rollout.create", str(rollout_id),
                        {"release": release_id, "board": release.board, "tags": tag_list,
                         "stages": list(policy.stages), "allow_downgrade": allow_downgrade,
                         "max_attempts": max_attempts})
            return self._rollout_status(conn, rollout_id)

    def rollout_status(self, rollout_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._rollout_status(conn, rollout_id)

    def list_rollouts(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            ids = conn.execute(select(rollouts.c.id).order_by(rollouts.c.id)).scalars().all()
            return [self._rollout_status(conn, i) for i in ids]

    def rollout_action(self, rollout_id: int, action: str, actor: str) -> dict[str, Any]:
        with self.db.write() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id).with_for_update()).first()
            if row is None:
                raise NotFound(f"unknown rollout {rollout_id}", code="unknown_rollout")
            try:
                state = rollout_policy.transition(row.state, action)
            except rollout_policy.PolicyError as exc:
                raise Conflict(str(exc), code="invalid_transition") from None
            now = self.clock()
            conn.execute(update(rollouts).where(rollouts.c.id == rollout_id)
                         .values(state=state, reason=f"{action} by {actor}", updated_at=now))
            if state == "cancelled":
                for attempt in conn.execute(select(attempts.c.id, attempts.c.state).where(
                        attempts.c.rollout_id == rollout_id, attempts.c.state.not_in(TERMINAL))).all():
                    self._advance(conn, attempt.id, attempt.state, "cancelled", "rollout cancelled")
            self._audit(conn, actor, f"rollout.{action}", str(rollout_id), {"from": row.state, "to": state})
            return self._rollout_status(conn, rollout_id)

    def _progress(self, conn: Connection, rollout_id: int) -> Progress:
        """Counts by each device's latest attempt: a device that failed once and then succeeded is a
        success, and one failure of a device that may still be retried is one failed device."""
        admitted, max_attempts = conn.execute(select(rollouts.c.admitted, rollouts.c.max_attempts)
                                              .where(rollouts.c.id == rollout_id)).one()
        newer = aliased(attempts)
        latest = select(func.max(newer.c.attempt_no)).where(
            newer.c.device_id == attempts.c.device_id, newer.c.rollout_id == rollout_id).scalar_subquery()
        counts = {s: 0 for s in ATTEMPT_STATES}
        done = 0
        for state, number, count in conn.execute(
                select(attempts.c.state, attempts.c.attempt_no, func.count())
                .where(attempts.c.rollout_id == rollout_id, attempts.c.attempt_no == latest)
                .group_by(attempts.c.state, attempts.c.attempt_no)).all():
            counts[state] += int(count)
            if state in ("success", "reverted") or (state == "failure" and number >= max_attempts):
                done += int(count)
        retried = conn.execute(select(func.count()).select_from(attempts).where(
            attempts.c.rollout_id == rollout_id, attempts.c.attempt_no > 1)).scalar_one()
        tally = rollout_policy.Tally(int(admitted), counts["success"], sum(counts[s] for s in FAILED))
        return Progress(tally, counts, int(retried), done)

    def _evaluate(self, conn: Connection, rollout_id: int) -> None:
        row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id).with_for_update()).one()
        if row.state != "active":
            return
        tally = self._progress(conn, rollout_id).tally
        targets = self._targets(conn, rollout_id)
        decision = rollout_policy.decide(self._policy(row), row.stage_index, targets, tally)
        if decision.halt:
            conn.execute(update(rollouts).where(rollouts.c.id == rollout_id)
                         .values(state="halted", reason=decision.reason, updated_at=self.clock()))
            self._audit(conn, "server", "rollout.halt", str(rollout_id), {"reason": decision.reason})
            log.warning("rollout halted", extra={"rollout": rollout_id, "reason": decision.reason})
        elif decision.stage_index != row.stage_index:
            conn.execute(update(rollouts).where(rollouts.c.id == rollout_id)
                         .values(stage_index=decision.stage_index, reason=decision.reason,
                                 updated_at=self.clock()))
            self._audit(conn, "server", "rollout.advance", str(rollout_id),
                        {"stage": decision.stage_index + 1, "reason": decision.reason})
            log.info("rollout advanced", extra={"rollout": rollout_id, "stage": decision.stage_index + 1})

    def _rollout_status(self, conn: Connection, rollout_id: int) -> dict[str, Any]:
        row = conn.execute(select(rollouts, releases.c.version, boards.c.name.label("board"))
                           .select_from(rollouts.join(releases, rollouts.c.release_id == releases.c.id)
                                        .join(boards, rollouts.c.board_id == boards.c.id))
                           .where(rollouts.c.id == rollout_id)).first()
        if row is None:
            raise NotFound(f"unknown rollout {rollout_id}", code="unknown_rollout")
        progress = self._progress(conn, rollout_id)
        tally, counts = progress.tally, progress.counts
        stages = json.loads(row.stages)
        targets = self._targets(conn, rollout_id)
        # Computed, not stored: a device registered later that matches makes the rollout incomplete
        # again, and it goes on offering the release to it.
        complete = (row.stage_index == len(stages) - 1 and stages[-1] == 100 and targets > 0
                    and progress.done >= targets)
        state = "completed" if complete and row.state == "active" else row.state
        return {
            "id": row.id, "release_id": row.release_id, "version": row.version, "board": row.board,
            "tags": json.loads(row.tags), "state": state, "stages": stages, "stage": row.stage_index + 1,
            "stage_percent": stages[row.stage_index],
            "stage_cap": rollout_policy.stage_cap(stages, row.stage_index, targets), "targets": targets,
            "admitted": tally.admitted, "succeeded": tally.succeeded, "failed": tally.failed,
            "in_progress": sum(counts[s] for s in ATTEMPT_STATES if s not in TERMINAL),
            "counts": counts, "halt_failure_rate": row.halt_failure_rate, "min_attempts": row.min_attempts,
            "advance_success_rate": row.advance_success_rate, "allow_downgrade": bool(row.allow_downgrade),
            "max_attempts": row.max_attempts, "retried": progress.retried, "complete": complete,
            "reason": row.reason, "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        }

    # --- audit -------------------------------------------------------------------------------------

    def _audit(self, conn: Connection, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        conn.execute(audit_log.insert().values(
            created_at=self.clock(), actor=actor[:64], action=action, target=target[:128],
            detail=json.dumps(detail, sort_keys=True)))

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
        return [{"id": r.id, "at": _iso(r.created_at), "actor": r.actor, "action": r.action,
                 "target": r.target, "detail": json.loads(r.detail)} for r in rows]
