"""Fixtures of the update-server tests, loaded with ``pytest_plugins = ["server_fixtures"]`` (a
conftest.py here would shadow tests/conftest.py): signing keys and images, a PostgreSQL the tests start
themselves on a free port, and a real server on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from server_helpers import LiveServer, make_image, start_server

from mcuota.image.keys import PrivateKey, generate_private_key
from mcuota.netutil import free_port
from mcuota.server.settings import Settings

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@pytest.fixture(scope="session")
def signing_key() -> PrivateKey:
    return generate_private_key("ed25519")


@pytest.fixture(scope="session")
def other_key() -> PrivateKey:
    return generate_private_key("ed25519")


@pytest.fixture
def image(signing_key: PrivateKey) -> Callable[..., bytes]:
    """``image("2.0.0")`` signed with ``signing_key``; ``key=None`` unsigned, ``board=`` names a board."""
    def build(version: str = "2.0.0", *, key: PrivateKey | str | None = "default", board: str | None = None,
              release: str = "2.0.0") -> bytes:
        chosen = signing_key if key == "default" else key
        assert not isinstance(chosen, str)
        return make_image(version, chosen, board=board, release=release)

    return build


# --- PostgreSQL, started by the tests -------------------------------------------------------------

@dataclass
class Postgres:
    port: int
    root: Path
    admin_url: str

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://mcuota@127.0.0.1:{self.port}/{name}"


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    return [runuser, "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL server in a temporary directory, on a free port, for this test session."""
    bin_dir = next((d for d in PG_BIN_DIRS if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are not installed: scripts/setup.sh should have installed them")
        pytest.skip("PostgreSQL binaries are not installed (scripts/setup.sh installs them)")
    prefix = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="mcuota-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port()
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "mcuota", "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(root / "log"), "-w", "-t", "30", "start"], check=True, capture_output=True)
    try:
        yield Postgres(port, root, f"postgresql://mcuota@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


# --- a real server ---------------------------------------------------------------------------------

@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``make(database_url=None, **settings)`` → a server on a free port, stopped after the test."""
    running: list[tuple[Any, threading.Thread, LiveServer]] = []

    def make(database_url: str | None = None, **overrides: Any) -> LiveServer:
        data_dir = tmp_path / f"data{len(running)}"
        overrides.setdefault("rate_limit", 0)
        settings = Settings(data_dir=data_dir, database_url=database_url, **overrides)
        server, thread, url = start_server(settings)
        key = (data_dir / "admin-api-key").read_text().strip()
        live = LiveServer(url, data_dir, key, settings)
        running.append((server, thread, live))
        return live

    yield make
    for server, thread, live in running:
        for client in live.clients:
            client.close()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest, live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """The same server on SQLite and on PostgreSQL: the core tests run against both."""
    if request.param == "postgres":
        pg: Postgres = request.getfixturevalue("postgres")
        return live_server_factory(pg.new_database())
    return live_server_factory()
