"""Alembic migrations of the update service's schema, shipped inside the package and run on start."""
