"""The database connection: SQLite (WAL) by default, PostgreSQL through ``postgresql+psycopg://``.

Two kinds of transaction, chosen by the caller: :meth:`Database.read` and :meth:`Database.write`. The
difference matters on SQLite, where a transaction that reads and then writes can fail with "database is
locked" at the moment it upgrades its lock, whatever the busy timeout; a write transaction therefore
starts with ``BEGIN IMMEDIATE`` and waits its turn up front. ``synchronous=FULL`` makes a commit durable
before the server acknowledges it: a report a device was told "stored" survives a crash of the server.

The schema is owned by the Alembic migrations shipped in :mod:`mcuota.server.migrations`, applied by
:meth:`Database.migrate` when the server starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from mcuota.errors import UsageError

log = logging.getLogger("mcuota.server.db")
MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Keep as many connections as the threadpool has threads (anyio's default is 40): a connection
    # returned beyond the pool is closed, and reopening one costs a connect and four PRAGMAs.
    file_backed = bool(parsed.database) and parsed.database != ":memory:"
    pool = {"pool_size": 40, "max_overflow": 40} if file_backed else {}
    engine = create_engine(url, connect_args={"timeout": 30}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("mcuota_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"invalid database URL {url!r}") from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(url)
        if backend == "postgresql":
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except NoSuchModuleError as exc:
        raise UsageError(f"database URL {parsed.render_as_string(hide_password=True)}: {exc}") from None
    raise UsageError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://…")


class Database:
    """One engine and the two ways of using it; cheap to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's
        # busy handler (1, 2, 5, 10 … 100 ms steps) instead of waking when it is free: under load the
        # queue of check-ins spends most of its time asleep. Queueing this process's writers on a lock
        # hands the database over at once; an flock on a file beside the database does the same
        # between the processes of ``mcuota serve --workers N`` (the busy timeout stays as the backstop
        # for any other writer, such as a second server or the sqlite3 shell).
        self._write_lock: threading.RLock | None = threading.RLock() if self.dialect == "sqlite" else None
        self._write_depth = 0
        self._lock_fd: int | None = None
        database = make_url(url).database if self.dialect == "sqlite" else None
        if database and database != ":memory:":
            self._lock_fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write; committed when the block ends without an exception."""
        if self._write_lock is None:
            with self.engine.connect().execution_options(mcuota_write=True) as conn, conn.begin():
                yield conn
            return
        with self._write_lock, self._process_lock(), \
                self.engine.connect().execution_options(mcuota_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        """The flock between server processes; taken only by the outermost write of the thread that
        holds ``_write_lock`` (an flock belongs to the open file, which all threads share)."""
        if self._lock_fd is None:
            yield
            return
        self._write_depth += 1
        try:
            if self._write_depth == 1:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            yield
        finally:
            self._write_depth -= 1
            if self._write_depth == 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def migrate(self) -> str:
        """Bring the schema to the newest revision; returns that revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        with self.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            revision = MigrationContext.configure(conn).get_current_revision()
        return revision or ""

    def revision(self) -> str:
        """The schema revision the database is at, without changing it."""
        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
