"""Upgrading a database made by revision 0001: releases get their MD5 from the blob store, rollouts a
max_attempts of 3, attempts a number that lets one device hold several attempts of one rollout; a
release whose blob the migration could not reach gets its MD5 when the server starts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from mcuota.server.blobs import FileBlobStore
from mcuota.server.db import MIGRATIONS, Database
from mcuota.server.fleet import Fleet
from mcuota.server.schema import attempt_events, attempts, releases, rollouts


def _migrate_to(db: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _release_row(conn: sa.Connection, release_id: int, data: bytes, version: int) -> None:
    conn.execute(sa.text(
        "INSERT INTO releases (id, board_id, version, v_major, v_minor, v_revision, v_build, sha256, size, "
        "format, file_name, signed, created_at) VALUES (:id, 1, :v, :major, 0, 0, 0, :sha, :size, "
        "'mcuboot', :name, 1, 0)"),
        {"id": release_id, "v": f"{version}.0.0", "major": version, "sha": hashlib.sha256(data).hexdigest(),
         "size": len(data), "name": f"app-{version}.bin"})


def test_upgrade_from_0001_fills_md5_and_allows_retries(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db = Database(f"sqlite:///{data_dir / 'mcuota.db'}")
    blobs = FileBlobStore(data_dir / "blobs")
    stored, late = b"release one" * 100, b"release two" * 100
    try:
        _migrate_to(db, "0001")
        blobs.put(stored)
        with db.write() as conn:
            conn.execute(sa.text("INSERT INTO boards (id, name, created_at) VALUES (1, 'f407', 0)"))
            _release_row(conn, 1, stored, 1)
            _release_row(conn, 2, late, 2)           # its blob is not where the migration looks
            conn.execute(sa.text(
                "INSERT INTO devices (id, serial, board_id, version, v_major, v_minor, v_revision, v_build, "
                "token_hash, created_at) VALUES (1, 'SN1', 1, '0.0.0', 0, 0, 0, 0, 'x', 0)"))
            conn.execute(sa.text(
                "INSERT INTO rollouts (id, release_id, board_id, tags, stages, stage_index, state, "
                "halt_failure_rate, min_attempts, advance_success_rate, allow_downgrade, admitted, reason, "
                "created_at, updated_at) VALUES (1, 1, 1, '[]', '[100]', 0, 'active', 0.1, 20, 0.9, 0, 1, "
                "'', 0, 0)"))
            conn.execute(sa.text(
                "INSERT INTO attempts (id, device_id, release_id, rollout_id, state, reason, created_at, "
                "updated_at) VALUES (1, 1, 1, 1, 'failure', '', 0, 0)"))
            conn.execute(sa.text("INSERT INTO attempt_events (id, attempt_id, state, reason, created_at) "
                                 "VALUES (7, 1, 'failure', 'flash write error', 5)"))

        assert db.migrate() == "0002"
        with db.read() as conn:
            md5s = dict(conn.execute(sa.select(releases.c.id, releases.c.md5)).all())
            assert md5s == {1: hashlib.md5(stored, usedforsecurity=False).hexdigest(), 2: None}
            assert conn.execute(sa.select(rollouts.c.max_attempts)).scalar_one() == 3
            assert conn.execute(sa.select(attempts.c.attempt_no)).scalar_one() == 1
            # the rebuild of attempts on SQLite must not cascade into their history
            assert conn.execute(sa.select(attempt_events.c.id, attempt_events.c.reason)).all() == [
                (7, "flash write error")]

        retry = {"device_id": 1, "release_id": 1, "rollout_id": 1, "state": "offered", "reason": "",
                 "created_at": 1.0, "updated_at": 1.0}
        with db.write() as conn:
            conn.execute(attempts.insert().values(attempt_no=2, **retry))
        with pytest.raises(IntegrityError), db.write() as conn:
            conn.execute(attempts.insert().values(attempt_no=2, **retry))

        blobs.put(late)                              # the blob is there by the time the server starts
        Fleet(db, blobs).sweep_blobs()
        with db.read() as conn:
            assert conn.execute(sa.select(releases.c.md5).where(releases.c.id == 2)).scalar_one() == \
                hashlib.md5(late, usedforsecurity=False).hexdigest()
    finally:
        db.dispose()
