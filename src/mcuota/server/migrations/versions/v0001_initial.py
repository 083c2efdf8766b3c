"""Initial schema: products, boards, trust, releases, devices, rollouts, attempts, API keys, audit log.

Revision ID: 0001
Revises:
Create Date: 2024-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("manufacturer", sa.String(128), nullable=False),
        sa.Column("manufacturer_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "boards",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("board_id", sa.Integer, sa.ForeignKey("boards.id"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("key_hash", "board_id", name="uq_signing_keys_hash_board"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("board_id", sa.Integer, sa.ForeignKey("boards.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("v_major", sa.Integer, nullable=False),
        sa.Column("v_minor", sa.Integer, nullable=False),
        sa.Column("v_revision", sa.Integer, nullable=False),
        sa.Column("v_build", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=False),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("board_id", "v_major", "v_minor", "v_revision", name="uq_releases_board_version"),
    )
    op.create_index("ix_releases_sha256", "releases", ["sha256"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("serial", sa.String(64), nullable=False, unique=True),
        sa.Column("board_id", sa.Integer, sa.ForeignKey("boards.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("v_major", sa.Integer, nullable=False),
        sa.Column("v_minor", sa.Integer, nullable=False),
        sa.Column("v_revision", sa.Integer, nullable=False),
        sa.Column("v_build", sa.BigInteger, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=True),
    )
    op.create_table(
        "device_tags",
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_device_tags_tag", "device_tags", ["tag"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("board_id", sa.Integer, sa.ForeignKey("boards.id"), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("stages", sa.Text, nullable=False),
        sa.Column("stage_index", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("halt_failure_rate", sa.Float, nullable=False),
        sa.Column("min_attempts", sa.Integer, nullable=False),
        sa.Column("advance_success_rate", sa.Float, nullable=False),
        sa.Column("allow_downgrade", sa.Boolean, nullable=False),
        sa.Column("admitted", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("stage_index", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("device_id", "rollout_id", name="uq_attempts_device_rollout"),
    )
    op.create_index("ix_attempts_device_state", "attempts", ["device_id", "state"])
    op.create_index("ix_attempts_rollout_state", "attempts", ["rollout_id", "state"])
    op.create_table(
        "attempt_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("attempt_id", sa.Integer, sa.ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_attempt_events_attempt_id", "attempt_events", ["attempt_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "api_keys", "attempt_events", "attempts", "rollouts", "device_tags", "devices",
                  "releases", "signing_keys", "boards", "products"):
        op.drop_table(table)
