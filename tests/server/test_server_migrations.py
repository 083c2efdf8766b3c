"""The Alembic migrations shipped in the package build exactly the schema the code queries with, on
SQLite and on PostgreSQL, and running them again is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mcuota.server.db import MIGRATIONS, Database
from mcuota.server.schema import metadata

pytest_plugins = ["server_fixtures"]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_migrations_match_the_schema(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (request.getfixturevalue("postgres").new_database() if database == "postgres"
           else f"sqlite:///{tmp_path / 'm.db'}")
    db = Database(url)
    try:
        assert db.migrate() == "0002"
        assert db.migrate() == "0002"          # idempotent on every start
        with db.read() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []
    finally:
        db.dispose()


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert list((MIGRATIONS / "versions").glob("v0001_*.py"))
