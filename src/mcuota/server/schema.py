"""The update service's tables, as SQLAlchemy Core metadata.

The Alembic migrations in :mod:`mcuota.server.migrations` create the schema; this metadata is what the
code queries with, and a test checks that the two never drift apart. Times are UNIX seconds (float) so
SQLite and PostgreSQL store and compare them the same way; versions are kept both as text (as the
operator wrote them) and as integer columns, so "newer than" is a query, not a parse.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

products = Table(
    "products", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("manufacturer", String(128), nullable=False),
    Column("manufacturer_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

boards = Table(
    "boards", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=True),
    Column("created_at", Float, nullable=False),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False),
    Column("key_type", String(16), nullable=False),
    Column("pem", Text, nullable=False),
    Column("board_id", Integer, ForeignKey("boards.id"), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("key_hash", "board_id", name="uq_signing_keys_hash_board"),
)

def version_columns() -> list[Column[Any]]:
    """A version as text and as its numeric parts, so that "newer than" is an indexed comparison in SQL
    (releases and devices both carry one)."""
    return [
        Column("version", String(32), nullable=False),
        Column("v_major", Integer, nullable=False),
        Column("v_minor", Integer, nullable=False),
        Column("v_revision", Integer, nullable=False),
        Column("v_build", BigInteger, nullable=False),
    ]


releases = Table(
    "releases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("board_id", Integer, ForeignKey("boards.id"), nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=True),
    *version_columns(),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=True),  # NULL only for a row whose blob was missing at migration
    Column("format", String(32), nullable=False),
    Column("file_name", String(128), nullable=False),
    Column("signed", Boolean, nullable=False),
    Column("key_hash", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("board_id", "v_major", "v_minor", "v_revision", name="uq_releases_board_version"),
)

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("board_id", Integer, ForeignKey("boards.id"), nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=True),
    *version_columns(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=True),
)

device_tags = Table(
    "device_tags", metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_device_tags_tag", "tag"),
)

rollouts = Table(
    "rollouts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("board_id", Integer, ForeignKey("boards.id"), nullable=False),
    Column("tags", Text, nullable=False),
    Column("stages", Text, nullable=False),
    Column("stage_index", Integer, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("halt_failure_rate", Float, nullable=False),
    Column("min_attempts", Integer, nullable=False),
    Column("advance_success_rate", Float, nullable=False),
    Column("allow_downgrade", Boolean, nullable=False),
    Column("admitted", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False, server_default=text("3")),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("release_id", Integer, ForeignKey("releases.id"), nullable=False),
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("stage_index", Integer, nullable=True),
    Column("attempt_no", Integer, nullable=False, server_default=text("1")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Two check-ins of one device racing to open the same retry: the second insert fails and re-reads.
    UniqueConstraint("device_id", "rollout_id", "attempt_no", name="uq_attempts_device_rollout_no"),
    Index("ix_attempts_device_state", "device_id", "state"),
    Index("ix_attempts_rollout_state", "rollout_id", "state"),
)

attempt_events = Table(
    "attempt_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("attempt_id", Integer, ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("detail", Text, nullable=False),
)
