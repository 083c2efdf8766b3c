"""The pieces the download and check-in paths lean on: summed access logs, the 100 % stage that needs no
count of targets, mapped blobs, and the SQLite writer lock shared between processes."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from mcuota.server import rollout_policy
from mcuota.server.blobs import FileBlobStore, MemoryBlobStore
from mcuota.server.db import Database
from mcuota.server.downloads import OpenBlobs
from mcuota.server.logs import AccessSummary, JsonFormatter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def summary_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.access.{time.monotonic_ns()}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_access_summary_sums_per_route_and_status_once_per_interval() -> None:
    logger, stream = summary_logger()
    clock = FakeClock()
    summary = AccessSummary(logger, every=10.0, clock=clock)
    for seconds in (0.001, 0.003, 0.002):
        summary.add("GET", "/api/v1/device/artifacts/{release_id}", 206, seconds)
    summary.add("POST", "/api/v1/device/checkin", 200, 0.010)
    assert stream.getvalue() == ""  # nothing before the interval is over
    clock.now += 10.0
    summary.add("POST", "/api/v1/device/checkin", 200, 0.030)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["method"], x["route"], x["status"], x["count"], x["mean_ms"], x["max_ms"], x["interval_s"])
            for x in lines] == [
        ("GET", "/api/v1/device/artifacts/{release_id}", 206, 3, 2.0, 3.0, 10.0),
        ("POST", "/api/v1/device/checkin", 200, 2, 20.0, 30.0, 10.0)]
    summary.flush()  # emptied by the last flush: a flush with nothing to say says nothing
    assert len(stream.getvalue().splitlines()) == 2


def test_only_a_full_stage_skips_counting_targets() -> None:
    stages = (1, 10, 50, 100)
    assert [rollout_policy.admits_every_target(stages, i) for i in range(4)] == [False, False, False, True]
    # At 100 % the cap is the number of targets, which counts the asking device and every admitted one.
    for admitted in range(5):
        assert rollout_policy.may_admit(rollout_policy.Policy(stages), 3, admitted + 1, admitted)


def test_open_blobs_serve_the_same_bytes_as_the_store(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    data = bytes(range(256)) * 64
    digest = store.put(data)
    blobs = OpenBlobs(store, size=1)
    assert blobs.read(digest, 4096, 4096) == data[4096:8192] == store.read(digest, 4096, 4096)
    assert blobs.read(digest, len(data) - 10, 4096) == data[-10:]
    other = store.put(b"other release")
    assert blobs.read(other, 0, 5) == b"other"  # evicts the first mapping, which stays readable elsewhere
    assert blobs.read(digest, 0, 3) == data[:3]


def test_open_blobs_fall_back_to_the_store_for_empty_missing_and_memory_blobs(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    empty = store.put(b"")
    assert OpenBlobs(store).read(empty, 0, 0) == b""
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(KeyError):
        OpenBlobs(store).read(missing, 0, 10)
    memory = MemoryBlobStore()
    digest = memory.put(b"in memory")
    assert OpenBlobs(memory).read(digest, 3, 6) == b"memory"


def _count_up(url: str, times: int) -> None:
    db = Database(url)
    for _ in range(times):
        with db.write() as conn:
            value = conn.execute(text("SELECT n FROM counter")).scalar_one()
            conn.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
    db.dispose()


def test_writers_in_several_processes_never_lose_an_update(tmp_path: Path) -> None:
    """Read-then-write transactions from four processes stay exact; while one process writes, the
    writer lock file beside the database is held, so the others queue on it, not in SQLite's busy
    handler."""
    url = f"sqlite:///{tmp_path / 'counter.db'}"
    db = Database(url)
    with db.write() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_count_up, args=(url, 50)) for _ in range(3)]
    for worker in workers:
        worker.start()
    _count_up(url, 50)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    with db.read() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 200
    lock = os.open(tmp_path / "counter.db-writer.lock", os.O_RDWR)
    try:
        with db.write(), pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once the write is over
    finally:
        os.close(lock)
    db.dispose()
