"""Alembic environment: migrations always run on a connection the server hands over (never from an
``alembic.ini``), so the same code path migrates SQLite and PostgreSQL at start-up and in tests."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from mcuota.server.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("mcuota migrations run through mcuota.server.db.migrate(), which passes a connection")
_run(_connection)
