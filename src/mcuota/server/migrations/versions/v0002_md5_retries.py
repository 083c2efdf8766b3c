"""Releases keep their MD5 (the Gizwits MCU checks it), rollouts retry failed devices: ``releases.md5``,
``rollouts.max_attempts``, ``attempts.attempt_no``, and a device may now hold several attempts per
rollout, one per number.

The MD5 of an existing release is computed from its blob when the blob store sits where the server
puts it beside a SQLite file (``<data dir>/blobs``); otherwise the column stays NULL and
:meth:`mcuota.server.fleet.Fleet.sweep_blobs` fills it in at the server's next start.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-02
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("releases", sa.Column("md5", sa.String(32), nullable=True))
    op.add_column("rollouts", sa.Column("max_attempts", sa.Integer, nullable=False,
                                        server_default=sa.text("3")))
    op.add_column("attempts", sa.Column("attempt_no", sa.Integer, nullable=False,
                                        server_default=sa.text("1")))
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_attempts_on_sqlite()
    else:
        op.drop_constraint("uq_attempts_device_rollout", "attempts", type_="unique")
        op.create_unique_constraint("uq_attempts_device_rollout_no", "attempts",
                                    ["device_id", "rollout_id", "attempt_no"])
    _fill_md5(op.get_bind())


def _events_table() -> None:
    op.create_table(
        "attempt_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("attempt_id", sa.Integer, sa.ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_attempt_events_attempt_id", "attempt_events", ["attempt_id"])


def _rebuild_attempts_on_sqlite() -> None:
    """SQLite drops an inline UNIQUE only by rebuilding the table, and the migration runs inside a
    transaction, where foreign keys cannot be switched off: dropping ``attempts`` would cascade into
    ``attempt_events``. So the events are set aside first and put back after the rebuild."""
    op.execute("CREATE TABLE _attempt_events_0002 AS SELECT id, attempt_id, state, reason, created_at "
               "FROM attempt_events")
    op.drop_table("attempt_events")
    with op.batch_alter_table("attempts", recreate="always") as batch:
        batch.drop_constraint("uq_attempts_device_rollout", type_="unique")
        batch.create_unique_constraint("uq_attempts_device_rollout_no",
                                       ["device_id", "rollout_id", "attempt_no"])
    _events_table()
    op.execute("INSERT INTO attempt_events (id, attempt_id, state, reason, created_at) "
               "SELECT id, attempt_id, state, reason, created_at FROM _attempt_events_0002")
    op.drop_table("_attempt_events_0002")


def _blob_dir(conn: sa.engine.Connection) -> Path | None:
    url = conn.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).parent / "blobs"


def _fill_md5(conn: sa.engine.Connection) -> None:
    root = _blob_dir(conn)
    if root is None:
        return
    releases = sa.table("releases", sa.column("id", sa.Integer), sa.column("sha256", sa.String),
                        sa.column("md5", sa.String))
    missing = sa.select(releases.c.id, releases.c.sha256).where(releases.c.md5.is_(None))
    for row in conn.execute(missing).all():
        path = root / row.sha256[:2] / row.sha256
        try:
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        except OSError:
            continue
        conn.execute(sa.update(releases).where(releases.c.id == row.id).values(md5=digest))


def downgrade() -> None:
    """Back to one attempt per device and rollout: keeps each device's latest attempt of a rollout."""
    op.execute("DELETE FROM attempts WHERE attempt_no < (SELECT MAX(a.attempt_no) FROM attempts a "
               "WHERE a.device_id = attempts.device_id AND a.rollout_id = attempts.rollout_id)")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TABLE _attempt_events_0002 AS SELECT id, attempt_id, state, reason, created_at "
                   "FROM attempt_events")
        op.drop_table("attempt_events")
        with op.batch_alter_table("attempts", recreate="always") as batch:
            batch.drop_constraint("uq_attempts_device_rollout_no", type_="unique")
            batch.create_unique_constraint("uq_attempts_device_rollout", ["device_id", "rollout_id"])
            batch.drop_column("attempt_no")
        _events_table()
        op.execute("INSERT INTO attempt_events (id, attempt_id, state, reason, created_at) "
                   "SELECT id, attempt_id, state, reason, created_at FROM _attempt_events_0002")
        op.drop_table("_attempt_events_0002")
        with op.batch_alter_table("rollouts") as batch:
            batch.drop_column("max_attempts")
        with op.batch_alter_table("releases") as batch:
            batch.drop_column("md5")
        return
    op.drop_constraint("uq_attempts_device_rollout_no", "attempts", type_="unique")
    op.create_unique_constraint("uq_attempts_device_rollout", "attempts", ["device_id", "rollout_id"])
    op.drop_column("attempts", "attempt_no")
    op.drop_column("rollouts", "max_attempts")
    op.drop_column("releases", "md5")
