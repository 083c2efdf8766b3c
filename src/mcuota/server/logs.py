"""Structured logs: one JSON object per line on stderr, with the ``extra`` fields a call site passes
(``log.info("rollout advanced", extra={"rollout": 3})``), so a log shipper indexes them as fields."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName",
                                                                        "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items()
                          if k not in _STANDARD and not k.startswith("_"))
        return f"mcuota serve: {record.getMessage()}" + (f" ({extras})" if extras else "")


def configure(fmt: str = "json", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send mcuota's and uvicorn's logs to ``stream`` (stderr) in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    quiet = {"alembic", "amqtt", "transitions"}      # chatty libraries: warnings and errors only
    for name in ("mcuota", "uvicorn", "uvicorn.error", *sorted(quiet)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if name in quiet else level)
        logger.propagate = False


def set_worker(index: int) -> None:
    """Tag every line of this process with ``worker`` (``mcuota serve --workers N``)."""

    def tag(record: logging.LogRecord) -> bool:
        record.worker = index
        return True

    for handler in logging.getLogger("mcuota").handlers:
        handler.addFilter(tag)


ACCESS_SUMMARY_SECONDS = 10.0


class AccessSummary:
    """Successful requests summed per method, route and status, one line each per interval: a line per
    request costs more than a 4096-byte Range answer does, and says nothing the sums and the metrics do
    not (``--access-log`` brings them back). Used from the event loop only, so it takes no lock."""

    def __init__(self, logger: logging.Logger, every: float = ACCESS_SUMMARY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self._since = clock()
        self._sums: dict[tuple[str, str, int], list[float]] = {}

    def add(self, method: str, route: str, status: int, seconds: float) -> None:
        entry = self._sums.get((method, route, status))
        if entry is None:
            self._sums[(method, route, status)] = [1, seconds, seconds]
        else:
            entry[0] += 1
            entry[1] += seconds
            entry[2] = max(entry[2], seconds)
        if self.clock() - self._since >= self.every:
            self.flush()

    def flush(self) -> None:
        now = self.clock()
        interval = round(now - self._since, 1)
        for (method, route, status), (count, total, longest) in sorted(self._sums.items()):
            self.logger.info("requests", extra={
                "method": method, "route": route, "status": status, "count": int(count),
                "mean_ms": round(total / count * 1000, 2), "max_ms": round(longest * 1000, 2),
                "interval_s": interval})
        self._sums.clear()
        self._since = now
